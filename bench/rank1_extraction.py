"""Benchmark: rank-1 extraction of global + local + target deltas, straight from LoRA factors.

Prints, for a synthetic run (bf16 adapters, r=64, 15 checkpoints):
  1. time to merely read every tensor of every checkpoint (warm page cache),
  2. nextx `trajectories()` time and peak RSS (in a fresh subprocess),
  3. side by side on the same modules: the reference method (merge each checkpoint into m×n
     deltas, then a dense SVD of every global/local/target delta) vs nextx.

    python bench/rank1_extraction.py                         # 7B-shaped, goals: ≤ 60 s, ≤ 2 GB
    python bench/rank1_extraction.py --shape qwen2.5-0.5b --reference-layers 24
    python bench/rank1_extraction.py --busy 1        # also beside 1 busy process: sized pool vs full pool
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors import safe_open

from nextx.studies.machine import describe  # noqa: E402
from nextx.studies.synthetic import write_run  # noqa: E402

HORIZON = 5


def read_everything(run: Path) -> float:
    start = time.perf_counter()
    for ckpt in sorted(run.glob("checkpoint-*")):
        with safe_open(str(ckpt / "adapter_model.safetensors"), "pt") as f:
            for key in f.keys():
                f.get_tensor(key).float()
    return time.perf_counter() - start


def nextx_child(run: Path, modules: list[str] | None) -> None:
    """Run in a subprocess: time trajectories() and report peak RSS."""
    import nextx

    start = time.perf_counter()
    loaded = nextx.load_run(run)
    traj = nextx.trajectories(loaded, horizon=HORIZON, modules=modules)
    elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "peak_rss_mb": peak_mb, "modules": len(traj.modules)}))


def reference_method(run: Path, modules: list[str]) -> float:
    """The reference code's approach: materialise s·B·A per checkpoint, dense SVD of each delta."""
    config = json.loads((next(run.glob("checkpoint-*")) / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    ckpts = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    start = time.perf_counter()
    for name in modules:
        weights = []
        for ckpt in ckpts:
            with safe_open(str(ckpt / "adapter_model.safetensors"), "pt") as f:
                A = f.get_tensor(f"base_model.model.{name}.lora_A.weight").double()
                B = f.get_tensor(f"base_model.model.{name}.lora_B.weight").double()
            weights.append(scale * B @ A)
        zero = torch.zeros_like(weights[0])
        for i, w in enumerate(weights):
            torch.linalg.svd(w, full_matrices=False)
            torch.linalg.svd(w - (weights[i - 1] if i else zero), full_matrices=False)
            if i + HORIZON < len(weights):
                torch.linalg.svd(weights[i + HORIZON] - w, full_matrices=False)
    return time.perf_counter() - start


def run_child(run: Path, modules: list[str] | None, env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(run)]
    if modules:
        cmd += ["--modules", ",".join(modules)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **(env or {})}).stdout
    return json.loads(out.strip().splitlines()[-1])


def beside_busy(run: Path, busy: int, idle_seconds: float) -> None:
    """Trajectories while ``busy`` other processes spin: nextx's pool sized to the free cores, then
    the full pool (NEXTX_THREADS = every core: the behaviour before sizing), same run."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(1.0)  # let them show up in /proc/stat
        sized = run_child(run, None)
        full = run_child(run, None, {"NEXTX_THREADS": str(os.cpu_count() or 1)})
    finally:
        for spinner in spinners:
            spinner.kill()
    print(f"beside {busy} busy process(es): sized pool {sized['seconds']:.1f} s "
          f"({sized['seconds'] / idle_seconds:.1f}x idle), full pool {full['seconds']:.1f} s "
          f"({full['seconds'] / idle_seconds:.1f}x idle)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="qwen2.5-7b", choices=["qwen2.5-7b", "qwen2.5-0.5b", "tiny"])
    parser.add_argument("--checkpoints", type=int, default=15)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--reference-shape", default="qwen2.5-0.5b")
    parser.add_argument("--reference-layers", type=int, default=2,
                        help="layers of the reference-shaped run to time both methods on (dense SVD is slow)")
    parser.add_argument("--workdir", default=None, help="where to write the synthetic runs (default: a temp dir)")
    parser.add_argument("--busy", type=int, default=0, help="also time beside N busy processes")
    parser.add_argument("--no-reference", action="store_true", help="skip the merge + dense SVD comparison")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--modules", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        nextx_child(Path(args.child), args.modules.split(",") if args.modules else None)
        return

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="nextx-bench-"))
    steps = [10 * (i + 1) for i in range(args.checkpoints)]
    print(f"{describe()}; workdir {workdir}")
    try:
        run = workdir / args.shape
        t = time.perf_counter()
        if not (run / f"checkpoint-{steps[-1]}").exists():  # a --workdir run is written once, then reused
            write_run(run, args.shape, steps, rank=args.rank)
        os.sync()  # no writeback of the fresh files may run while timing
        size_gb = sum(p.stat().st_size for p in run.rglob("*.safetensors")) / 1e9
        print(f"[{args.shape}] {args.checkpoints} bf16 adapters, r={args.rank}: {size_gb:.2f} GB (written or found "
              f"and synced in {time.perf_counter() - t:.1f} s)")
        read_everything(run)  # warm the page cache once
        read_s = read_everything(run)
        result = run_child(run, None)
        print(f"[{args.shape}] read all files (warm cache): {read_s:.1f} s")
        print(f"[{args.shape}] nextx global+local+target rank-1 of {result['modules']} modules: "
              f"{result['seconds']:.1f} s ({result['seconds'] / read_s:.1f}x read time), "
              f"peak RSS {result['peak_rss_mb'] / 1024:.2f} GB")
        if args.busy:
            beside_busy(run, args.busy, result["seconds"])
        if args.no_reference:
            return

        ref_run = workdir / f"{args.reference_shape}-ref"
        if not (ref_run / f"checkpoint-{steps[-1]}").exists():
            write_run(ref_run, args.reference_shape, steps, rank=args.rank)
        os.sync()
        from nextx.studies.synthetic import module_shapes

        modules = [m for m in module_shapes(args.reference_shape) if int(m.split(".")[2]) < args.reference_layers]
        ours = run_child(ref_run, modules)
        ref_s = reference_method(ref_run, modules)
        print(f"[{args.reference_shape}, {len(modules)} modules] reference merge + dense SVD: {ref_s:.1f} s; "
              f"nextx: {ours['seconds']:.2f} s; speed-up {ref_s / ours['seconds']:.0f}x")
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
