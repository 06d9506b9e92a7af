"""Benchmark: would float32 Gram blocks pay? (issue 14, item 3: extraction without float64)

nextx's exact extraction forms float64 Gram blocks LᵢᵀLⱼ and RᵢRⱼᵀ for every pair of checkpoints a
global (i, i), local (i, i−1) or target (i+h, i) delta needs — 3 blocks a side per checkpoint.
A float32 path cannot take the same blocks (a local delta's Gram Gᵢᵢ − 2Gᵢ,ᵢ₋₁ + Gᵢ₋₁,ᵢ₋₁ cancels),
but it can factor the difference itself: Wᵢ − Wᵢ₋₁ = [Bᵢ − Bᵢ₋₁, Bᵢ₋₁]·[Aᵢ; Aᵢ − Aᵢ₋₁], whose
factors are exact in float32 for bf16 checkpoints — at 2 new blocks a side per local and per
target delta instead of 1. This bench times both block sets on the same modules of a run and
measures the float32 path's σ₁ error on the local deltas against the exact float64 one.

    python bench/gram_precision.py RUN [--modules 14] [--horizon 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import nextx  # noqa: E402
from nextx.lowrank.spectrum import core_top  # noqa: E402
from nextx.studies.machine import describe  # noqa: E402


def exact_blocks(lefts_t, rights, horizon: int) -> float:
    """Seconds for the float64 blocks of the exact path (global, local and target pairs)."""
    count = len(lefts_t)
    pairs = {(i, i) for i in range(count)} | {(i, i - 1) for i in range(1, count)}
    pairs |= {(i + horizon, i) for i in range(count - horizon)}
    start = time.perf_counter()
    for i, j in pairs:
        lefts_t[i] @ lefts_t[j].T
        rights[i] @ rights[j].T
    return time.perf_counter() - start


def difference_blocks(lefts_t, rights, horizon: int) -> float:
    """Seconds for the float32 difference-factored blocks: every global (i, i), and per local or
    target delta of (later, earlier) the two new blocks a side, DᵀD and DᵀX."""
    lefts_t, rights = [x.float() for x in lefts_t], [x.float() for x in rights]
    count = len(lefts_t)
    deltas = [(i, i - 1) for i in range(1, count)] + [(i + horizon, i) for i in range(count - horizon)]
    start = time.perf_counter()
    for i in range(count):
        lefts_t[i] @ lefts_t[i].T
        rights[i] @ rights[i].T
    for later, earlier in deltas:
        d_left, d_right = lefts_t[later] - lefts_t[earlier], rights[later] - rights[earlier]
        d_left @ torch.cat([d_left, lefts_t[earlier]]).T
        d_right @ torch.cat([d_right, rights[later]]).T
    return time.perf_counter() - start


def local_sigma_error(lefts_t, rights) -> float:
    """Largest relative σ₁ error of the local deltas from float32 difference-factored Grams."""
    worst = 0.0
    for i in range(1, len(lefts_t)):
        exact_left = torch.cat([lefts_t[i], lefts_t[i - 1]])  # [Lᵢ, −Lᵢ₋₁]ᵀ·[Rᵢ; Rᵢ₋₁] in float64
        exact_left[len(lefts_t[i]):] *= -1
        exact_right = torch.cat([rights[i], rights[i - 1]])
        sigma = float(core_top(exact_left @ exact_left.T, exact_right @ exact_right.T, all_values=False)[0][0])
        left32 = torch.cat([lefts_t[i] - lefts_t[i - 1], lefts_t[i - 1]]).float()
        right32 = torch.cat([rights[i], rights[i] - rights[i - 1]]).float()
        approx = float(core_top((left32 @ left32.T).double(), (right32 @ right32.T).double(), all_values=False)[0][0])
        worst = max(worst, abs(approx - sigma) / sigma if sigma else 0.0)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--modules", type=int, default=14, help="the first N modules of the run")
    parser.add_argument("--horizon", type=int, default=5)
    args = parser.parse_args()
    run = nextx.load_run(args.run)
    print(describe())
    names = list(run.modules)[: args.modules]
    exact_s = float32_s = 0.0
    worst = 0.0
    for name in names:
        stack = run.deltas(name)
        lefts_t = [stack.left(i).T.contiguous() for i in range(len(stack))]
        rights = [stack.right(i) for i in range(len(stack))]
        exact_s += exact_blocks(lefts_t, rights, args.horizon)
        float32_s += difference_blocks(lefts_t, rights, args.horizon)
        worst = max(worst, local_sigma_error(lefts_t, rights))
    print(f"{len(names)} modules, {len(run.steps)} checkpoints, horizon {args.horizon}: Gram blocks exact float64 "
          f"{exact_s:.2f} s, float32 difference-factored {float32_s:.2f} s ({exact_s / float32_s:.2f}x); "
          f"float32 local-delta σ₁ error up to {worst:.1e} relative (goal 1e-6)")


if __name__ == "__main__":
    main()
