"""GPU check: in-loop jumps across 2 ranks on CUDA (NCCL) — DDP, FSDP1, FSDP2 and, where DeepSpeed is
installed, ZeRO-2/3 — the same cases the test suite runs on CPU with gloo (`nextx.studies.ranks`).
Needs 2 GPUs (each rank its own); prints one line per case and exits 1 if any failed.

    python bench/multi_gpu.py [--modes engine,fsdp1,fsdp2,zero2,zero3,zero3r]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from nextx.studies.ranks import check_ranks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="engine,fsdp1,fsdp2,zero2,zero3,zero3r")
    args = parser.parse_args()
    gpus = torch.cuda.device_count()
    print(f"{gpus} GPU(s): {', '.join(torch.cuda.get_device_name(i) for i in range(gpus)) or 'none'}")
    if gpus < 2:
        sys.exit("needs 2 GPUs (NCCL puts one rank on each); the CPU cases run in the test suite")
    failed = 0
    for mode in args.modes.split(","):
        if mode.startswith("zero") and importlib.util.find_spec("deepspeed") is None:
            print(f"{mode}: skipped (pip install 'nextx[deepspeed]')")
            continue
        out = Path(tempfile.mkdtemp(prefix=f"nextx-ranks-{mode}-"))
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                                 "-m", "nextx.studies.ranks", mode, str(out)],
                                env={**os.environ, "NEXTX_RANKS_DEVICE": "cuda"}, capture_output=True, text=True)
        problems = check_ranks(out, mode) if result.returncode == 0 else [result.stderr.strip().splitlines()[-1]]
        failed += bool(problems)
        print(f"{mode}: {'ok' if not problems else 'FAILED: ' + problems[0]} ({time.perf_counter() - start:.0f} s)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
