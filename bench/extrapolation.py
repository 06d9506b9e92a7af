"""Benchmark: `fit --method next`, `extrapolate --format adapter` and merged writing at scale.

1. 7B-shaped synthetic LoRA run (as bench/rank1_extraction.py): rank-1 trajectories, then NExt
   training time per epoch (the fit runs --epochs, default 10, and projects the paper's 1000);
2. `extrapolate` of that run to a PEFT adapter (rank r+1), timed end to end;
3. merged writing on a Qwen2.5-0.5B-shaped base: `save_merged` throughput (fsync'd) vs the disk's
   sequential write speed measured in the same run (same bytes, plain writes + fsync).

    python bench/extrapolation.py --workdir /tmp/benchwork
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import SHAPES, module_shapes, write_run  # noqa: E402

import nextx  # noqa: E402
from nextx.extrapolate import extrapolate  # noqa: E402
from nextx.fit import fit  # noqa: E402


def disk_write_speed(directory: Path, total_bytes: int) -> float:
    """Bytes/s of plain sequential 64 MiB writes + fsync (the disk's speed, as the OS sees it)."""
    chunk = os.urandom(64 << 20)
    path = directory / "speed-test.bin"
    start = time.perf_counter()
    with open(path, "wb") as f:
        written = 0
        while written < total_bytes:
            f.write(chunk)
            written += len(chunk)
        f.flush()
        os.fsync(f.fileno())
    seconds = time.perf_counter() - start
    path.unlink()
    return written / seconds


def write_base(path: Path, shape: str) -> int:
    """A random bf16 base model with the modules' weights, embeddings and norms."""
    layers, hidden, _, _ = SHAPES[shape]
    g = torch.Generator().manual_seed(0)
    tensors = {f"{name}.weight": (torch.randn(out, inp, generator=g) * 0.02).bfloat16()
               for name, (out, inp) in module_shapes(shape).items()}
    tensors["model.embed_tokens.weight"] = (torch.randn(151936, hidden, generator=g) * 0.02).bfloat16()
    tensors["model.norm.weight"] = torch.ones(hidden).bfloat16()
    for i in range(layers):
        tensors[f"model.layers.{i}.input_layernorm.weight"] = torch.ones(hidden).bfloat16()
    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
    (path / "config.json").write_text('{"model_type": "qwen2"}')
    return sum(t.numel() * t.element_size() for t in tensors.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--shape", default="qwen2.5-7b")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--merged-shape", default="qwen2.5-0.5b")
    parser.add_argument("--merged-only", action="store_true", help="skip parts 1 and 2")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nextx-bench-"))
    steps = [10 * (i + 1) for i in range(15)]
    if not args.merged_only:
        fit_and_adapter(work, args.shape, steps, args.epochs)
    merged_bench(work, args.merged_shape, steps)


def fit_and_adapter(work: Path, shape: str, steps: list[int], epochs: int) -> None:
    run_dir = work / shape
    if not (run_dir / "checkpoint-150").exists():
        write_run(run_dir, shape, steps)
    run = nextx.load_run(run_dir)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; run {run_dir} ({len(run.modules)} modules)")

    start = time.perf_counter()
    traj = nextx.trajectories(run, horizon=5)
    traj_s = time.perf_counter() - start
    start = time.perf_counter()
    predictor = fit(run, "next", horizon=5, traj=traj, epochs=epochs)
    train_s = time.perf_counter() - start
    per_epoch = train_s / epochs
    print(f"[fit next] trajectories {traj_s:.1f} s; training {epochs} epochs {train_s:.1f} s "
          f"({per_epoch:.2f} s/epoch) → 1000 epochs ≈ {traj_s + 1000 * per_epoch:.0f} s total (goal ≤ 300 s)")

    out = work / "adapter-out"
    start = time.perf_counter()
    extrapolate(run, predictor, coef=1.5).save_adapter(out, force=True)
    print(f"[extrapolate --format adapter] {time.perf_counter() - start:.1f} s (goal ≤ 30 s), "
          f"{sum(p.stat().st_size for p in out.iterdir()) / 1e9:.2f} GB")


def merged_bench(work: Path, shape: str, steps: list[int]) -> None:
    base = work / f"{shape}-base"
    if not (base / "model.safetensors").exists():
        write_base(base, shape)
    merged_run = work / f"{shape}-run"
    if not (merged_run / "checkpoint-150").exists():
        write_run(merged_run, shape, steps)
    small = nextx.load_run(merged_run, base=base)
    merged = work / "merged-out"
    jump = extrapolate(small, fit(small, "linear"), coef=1.0)
    os.sync()  # earlier writes must not be charged to this one
    start = time.perf_counter()
    jump.save_merged(merged, shard_size="500MB", force=True)
    os.sync()
    merged_s = time.perf_counter() - start
    written = sum(p.stat().st_size for p in merged.glob("*.safetensors"))
    disk = disk_write_speed(work, written)
    print(f"[merged, {shape}] {written / 1e9:.2f} GB in {merged_s:.1f} s = {written / merged_s / 1e6:.0f} MB/s; "
          f"disk sequential write {disk / 1e6:.0f} MB/s → {100 * written / merged_s / disk:.0f}% (goal ≥ 50%)")


if __name__ == "__main__":
    main()
