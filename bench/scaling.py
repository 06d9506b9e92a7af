"""Benchmark: how the cost grows — rank-1 trajectories and the NExt fit vs checkpoints and vs shape.

For each shape and checkpoint count: a synthetic run (bf16 adapters, r = 64, `synthetic.py`), then in
a fresh process `trajectories()` (time, peak memory) and NExt's seconds per epoch (a 1-epoch fit
subtracted from a (1 + ``--epochs``)-epoch one, so set-up is left out), projected to the paper's 1000. Qwen2.5-14B is measured on its first ``--layers-14b`` layers and
scaled by 48 / that (every layer has the same shapes, and both costs add up over modules).

    python bench/scaling.py --workdir /tmp/scaling           # 0.5B and 7B × (5, 15, 30, 60), 14B from 2 layers
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nextx.studies.machine import describe  # noqa: E402
from nextx.studies.synthetic import SHAPES, write_run  # noqa: E402

HORIZON = 3  # NExt's target horizon: 5 checkpoints leave room for no more


def child(run: Path, epochs: int) -> None:
    """In a fresh process: trajectories (seconds, peak memory), then NExt epochs."""
    import nextx
    from nextx.fitting import fit

    def peak_mb() -> float:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024

    loaded = nextx.load_run(run)
    start = time.perf_counter()
    traj = nextx.trajectories(loaded, horizon=HORIZON)
    traj_s, traj_mb = time.perf_counter() - start, peak_mb()
    seconds = []
    for count in (1, 1, 1 + epochs):  # a warm-up, then the difference leaves out the set-up
        start = time.perf_counter()
        fit(loaded, "next", horizon=HORIZON, traj=traj, epochs=count)
        seconds.append(time.perf_counter() - start)
    epoch_s = (seconds[2] - seconds[1]) / epochs
    print(json.dumps({"modules": len(loaded.modules), "trajectories_s": traj_s, "trajectories_peak_mb": traj_mb,
                      "epoch_s": epoch_s, "fit_peak_mb": peak_mb()}))


def measure(work: Path, shape: str, checkpoints: int, epochs: int, layers: int | None) -> dict:
    run = work / f"{shape}-{checkpoints}{'' if layers is None else f'-{layers}layers'}"
    steps = [10 * (i + 1) for i in range(checkpoints)]
    if not (run / f"checkpoint-{steps[-1]}").exists():
        write_run(run, shape, steps, layers=layers)
    out = subprocess.run([sys.executable, __file__, "--child", str(run), "--epochs", str(epochs)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--shapes", default="qwen2.5-0.5b,qwen2.5-7b")
    parser.add_argument("--checkpoints", default="5,15,30,60")
    parser.add_argument("--epochs", type=int, default=3, help="NExt epochs timed per cell")
    parser.add_argument("--layers-14b", type=int, default=2, help="Qwen2.5-14B layers measured (0: skip 14B)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child), args.epochs)
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nextx-scaling-"))
    counts = [int(c) for c in args.checkpoints.split(",")]
    rows = [(shape, c, None) for shape in args.shapes.split(",") for c in counts]
    if args.layers_14b:
        rows += [("qwen2.5-14b", c, args.layers_14b) for c in counts]
    print(describe())
    print("| shape | checkpoints | modules | trajectories s | trajectories peak GB | NExt s/epoch | 1000 epochs, min |"
          "\n|---|---|---|---|---|---|---|")
    try:
        for shape, count, layers in rows:
            r = measure(work, shape, count, args.epochs, layers)
            scale = SHAPES[shape][0] / layers if layers else 1.0  # per-layer figures × all layers
            label = f"{shape} (×{scale:g} from {layers} layers)" if layers else shape
            memory = r["trajectories_peak_mb"] / 1024  # one module at a time: not scaled
            print(f"| {label} | {count} | {round(r['modules'] * scale)} | {r['trajectories_s'] * scale:.1f} | "
                  f"{memory:.2f} | {r['epoch_s'] * scale:.2f} | {1000 * r['epoch_s'] * scale / 60:.1f} |", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
