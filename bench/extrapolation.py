"""Benchmark: `fit --method next`, `extrapolate --format adapter` and merged writing at scale.

1. 7B-shaped synthetic LoRA run (as bench/rank1_extraction.py): rank-1 trajectories, then NExt
   training time per epoch (the fit runs --epochs, default 10, and projects the paper's 1000);
2. `extrapolate` of that run to a PEFT adapter (rank r+1), timed end to end;
3. merged writing on a Qwen2.5-0.5B-shaped base: `save_merged` throughput (until synced) vs the
   disk's sequential write speed measured in the same run (same bytes, plain writes + fsync),
   interleaved --repeats times; medians compared; and its peak memory in a fresh process.

    python bench/extrapolation.py --workdir /tmp/benchwork
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

import nextx  # noqa: E402
from nextx.extrapolation import extrapolate  # noqa: E402
from nextx.fitting import fit  # noqa: E402
from nextx.studies.machine import describe  # noqa: E402
from nextx.studies.synthetic import SHAPES, module_shapes, write_run  # noqa: E402


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
    parser.add_argument("--repeats", type=int, default=5, help="merged/disk write pairs (medians are compared)")
    parser.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nextx-bench-"))
    steps = [10 * (i + 1) for i in range(15)]
    if args.rss_child:
        merged_rss_child(work, args.rss_child)
        return
    if not args.merged_only:
        fit_and_adapter(work, args.shape, steps, args.epochs)
    merged_bench(work, args.merged_shape, steps, args.repeats)
    result = subprocess.run([sys.executable, __file__, "--workdir", str(work), "--rss-child", args.merged_shape],
                            check=True, capture_output=True, text=True)
    print(result.stdout.strip())


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def merged_rss_child(work: Path, shape: str) -> None:
    """In a fresh process: peak RSS before and after one merged write with the default 5 GB shards."""
    run = nextx.load_run(work / f"{shape}-run", base=work / f"{shape}-base")
    jump = extrapolate(run, fit(run, "linear"), coef=1.0)
    before = peak_rss_mb()
    out = work / "merged-rss"
    jump.save_merged(out, force=True)
    written = sum(p.stat().st_size for p in out.glob("*.safetensors"))
    shutil.rmtree(out)
    after = peak_rss_mb()
    print(f"[merged, {shape}, memory] {written / 1e9:.2f} GB written as one ≤ 5 GB shard: peak RSS {before:.0f} MB "
          f"before, {after:.0f} MB after (+{after - before:.0f} MB; tensors stream, no shard is held in memory)")


def fit_shapes_peak(n: int, d: int, h: int = 256, dtype: torch.dtype = torch.float32) -> float:
    """This machine's matmul FLOP/s on the fit's own shapes: the best of the six products a Linear
    pair d→h→d runs on N = n rows (forward, input and weight gradients), best of 5 each."""
    x, y, w_in, w_out = (torch.randn(*s).to(dtype) for s in ((n, d), (n, h), (h, d), (d, h)))
    products = (lambda: x @ w_in.T, lambda: y @ w_out.T, lambda: x.T @ y, lambda: y.T @ x,
                lambda: x @ w_out, lambda: y @ w_in)
    best = []
    for product in products:
        product()
        best.append(min(_timed(product) for _ in range(5)))
    return 2 * n * d * h / min(best)


MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")
KINDS = {"optimizer (fused AdamW)": ("aten::_fused_adamw_",), "copies, fills and concatenation": (
    "aten::copy_", "aten::fill_", "aten::cat", "aten::zero_"), "ReLU forward and backward": (
    "aten::clamp_min", "aten::threshold_backward", "aten::relu"), "L1 loss forward and backward": (
    "aten::sub", "aten::abs", "aten::sgn", "aten::mul", "aten::sum", "aten::mean")}


def fit_breakdown(run, traj, epochs: int = 2) -> tuple[dict[str, float], float]:
    """Share of the fit's CPU time per kind of operation (torch.profiler, ``epochs`` epochs), and
    the matmuls' own seconds per epoch."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit(run, "next", horizon=5, traj=traj, epochs=epochs)
    self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(self_us.values())
    shares = {"matmuls": sum(self_us.get(k, 0) for k in MATMULS) / total}
    shares.update({kind: sum(self_us.get(k, 0) for k in keys) / total for kind, keys in KINDS.items()})
    shares["everything else"] = 1 - sum(shares.values())
    return shares, sum(self_us.get(k, 0) for k in MATMULS) / 1e6 / epochs


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def next_flops_per_epoch(predictor, hidden: int = 256) -> float:
    """Matmul FLOPs of one full-batch epoch: per group of vector length d and N pairs, the 15·d·h
    multiply-adds per sample (2 encoders 4dh, decoder 7dh) forward, and backward the same again for
    weight gradients plus all but the encoders' first layers (13dh) for input gradients: 86·N·d·h."""
    pairs = predictor.fit_info["pairs"]
    return sum(86 * pairs * count * int(key.rsplit(":", 1)[1]) * hidden
               for key, count in predictor.fit_info["groups"].items())


def fit_and_adapter(work: Path, shape: str, steps: list[int], epochs: int) -> None:
    run_dir = work / shape
    if not (run_dir / "checkpoint-150").exists():
        write_run(run_dir, shape, steps)
    run = nextx.load_run(run_dir)
    print(f"{describe()}; run {run_dir} ({len(run.modules)} modules)")

    start = time.perf_counter()
    traj = nextx.trajectories(run, horizon=5)
    traj_s = time.perf_counter() - start
    start = time.perf_counter()
    predictor = fit(run, "next", horizon=5, traj=traj, epochs=epochs)
    train_s = time.perf_counter() - start
    per_epoch = train_s / epochs
    flops = next_flops_per_epoch(predictor)
    pairs = predictor.fit_info["pairs"]
    n, d = max(((pairs * count, int(key.rsplit(":", 1)[1])) for key, count in predictor.fit_info["groups"].items()),
               key=lambda nd: nd[0] * nd[1])
    peak = fit_shapes_peak(n, d)
    achieved = flops / per_epoch
    print(f"[fit next] trajectories {traj_s:.1f} s; training {epochs} epochs {train_s:.1f} s "
          f"({per_epoch:.2f} s/epoch) → 1000 epochs ≈ {traj_s + 1000 * per_epoch:.0f} s total (goal ≤ 300 s)")
    print(f"[fit next] {flops / 1e9:.0f} GFLOP of matmuls per epoch at {achieved / 1e9:.0f} GFLOP/s; this machine's "
          f"float32 matmul peak on the fit's largest shapes (N={n}, d={d}) {peak / 1e9:.0f} GFLOP/s → "
          f"{achieved / peak:.0%} of peak (goal ≥ 80%); 1000 epochs take at least {1000 * flops / peak:.0f} s here")
    shares, matmul_seconds = fit_breakdown(run, traj)
    matmul_rate = flops / matmul_seconds
    print("[fit next] where the time goes: " + ", ".join(f"{kind} {share:.0%}" for kind, share in shares.items())
          + f"; inside the matmuls {matmul_rate / 1e9:.0f} GFLOP/s ({matmul_rate / peak:.0%} of peak)")

    for label, known in (("with the fit's trajectories (extrapolate --method next)", traj),
                         ("from a saved predictor (recomputes the last global/local triplets)", None)):
        out = work / "adapter-out"
        start = time.perf_counter()
        extrapolate(run, predictor, coef=1.5, traj=known).save_adapter(out, force=True)
        print(f"[extrapolate --format adapter, {label}] {time.perf_counter() - start:.1f} s (goal ≤ 30 s), "
              f"{sum(p.stat().st_size for p in out.iterdir()) / 1e9:.2f} GB")


def merged_bench(work: Path, shape: str, steps: list[int], repeats: int) -> None:
    """Interleave `save_merged` and plain writes of the same byte count, ``repeats`` times each (the
    VM disk's speed drifts from run to run), and compare medians. Both start after os.sync() and
    end when the bytes are on disk (fsync / sync). Three cases: linear (Ŵ − W₀ of rank 2r), NExt
    with the fit's trajectories (as `extrapolate --method next`), NExt from a saved predictor
    (`--predictor DIR`: the last global/local triplets of every module are recomputed)."""
    base = work / f"{shape}-base"
    if not (base / "model.safetensors").exists():
        write_base(base, shape)
    merged_run = work / f"{shape}-run"
    if not (merged_run / "checkpoint-150").exists():
        write_run(merged_run, shape, steps)
    run = nextx.load_run(merged_run, base=base)
    traj = nextx.trajectories(run, horizon=5)
    next_predictor = fit(run, "next", traj=traj, epochs=10)  # the fit's quality does not change the writing
    cases = {"linear": extrapolate(run, fit(run, "linear"), coef=1.0),
             "next, fit's trajectories": extrapolate(run, next_predictor, coef=1.5, traj=traj),
             "next, saved predictor": extrapolate(run, next_predictor, coef=1.5)}
    merged = work / "merged-out"
    for label, jump in cases.items():
        merged_speeds, disk_speeds = [], []
        for _ in range(repeats):
            shutil.rmtree(merged, ignore_errors=True)
            os.sync()  # earlier writes must not be charged to this one
            start = time.perf_counter()
            jump.save_merged(merged, shard_size="500MB")
            os.sync()
            seconds = time.perf_counter() - start
            written = sum(p.stat().st_size for p in merged.glob("*.safetensors"))
            merged_speeds.append(written / seconds)
            disk_speeds.append(disk_write_speed(work, written))
        merged_speed, disk = statistics.median(merged_speeds), statistics.median(disk_speeds)
        print(f"[merged, {shape}, {label}] {written / 1e9:.2f} GB; merged writing "
              f"{', '.join(f'{x / 1e6:.0f}' for x in merged_speeds)} MB/s (median {merged_speed / 1e6:.0f}); "
              f"disk sequential write {', '.join(f'{x / 1e6:.0f}' for x in disk_speeds)} MB/s "
              f"(median {disk / 1e6:.0f}) → {100 * merged_speed / disk:.0f}% (goal ≥ 50%)")


if __name__ == "__main__":
    main()
