"""The three ways a chosen jump Ŵ enters the live model (`LiveModel`), and the offsets they leave.

* ``offset``: W₀ ← W₀ + (Ŵ − W_T), factored, per module; LoRA factors and Adam's moments untouched.
* ``refactor``: the live rank-r LoRA ← best rank-r approximation of Ŵ − W₀; Adam's moments cleared.
* ``merge``: the offset above plus W₀ ← W₀ + s·B·A, then a fresh LoRA (B = 0, A Kaiming-uniform as
  PEFT initialises it, seeded by the step); Adam's moments cleared.

Offsets are kept per module as (L, R) with L·R the accumulated change of the base weight, in the
stored weight's orientation (`nextx.io.offsets`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from nextx.io.adapter import lora_factors, lora_pair
from nextx.io.offsets import accumulate
from nextx.lowrank import FactoredUpdate, compact, factors_of, truncate

APPLY_MODES = ("offset", "refactor", "merge")


def fold(offsets: dict, name: str, left: torch.Tensor, right: torch.Tensor) -> None:
    """Add L·R to a module's accumulated offset and keep it at its numerical rank: each jump's factors
    repeat the earlier offsets (they are part of every later checkpoint), so plain concatenation would
    grow the rank several-fold per jump."""
    accumulate(offsets, name, left, right)
    offsets[name] = tuple(f.to(torch.float32) for f in compact(*offsets[name]))


@dataclass
class JumpPlan:
    """A decided jump as every rank applies it: W₀ ← W₀ + L·R per module (``base``), then with
    ``merge`` the LoRA merged and restarted, and the live LoRA ← (A, B) per module (``factors``)."""

    record: dict
    base: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    merge: bool = False


@torch.no_grad()
def jump_changes(extrapolation) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Ŵ − W_T of every module as factors (L, R) in the stored orientation (modules that do not move
    are left out)."""
    last = len(extrapolation.run.steps) - 1
    changes = {}
    for name, stack, update in extrapolation.module_updates():
        left, right = factors_of(stack, update - FactoredUpdate({last: 1.0}))
        if left.shape[1]:
            changes[name] = (left, right)
    return changes


@torch.no_grad()
def apply_plan(live, plan: JumpPlan, offsets: dict, seed: int, additions: list | None = None) -> None:
    """Apply a decided jump to the live model (identically on every rank); optimizer moments are
    cleared when the LoRA factors change. Each change of the base weights, module → (L, R) as added,
    is appended to ``additions`` (a resume replays them: the same float additions, the same bits)."""
    for name, (left, right) in plan.base.items():
        live.add_to_base(name, left, right)
        fold(offsets, name, left, right)
    if plan.base and additions is not None:
        additions.append(dict(plan.base))
    if plan.merge:
        merged = merge_and_restart_lora(live, offsets, seed=seed)
        if additions is not None:
            additions.append(merged)
    for name, (A, B) in plan.factors.items():
        live.write_factors(name, A, B)
    if plan.merge or plan.factors:
        live.reset_optimizer()


@torch.no_grad()
def merge_and_restart_lora(live, offsets: dict, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """W₀ ← W₀ + s·B·A in every module (folded into ``offsets``), then a fresh LoRA: B = 0, A
    Kaiming-uniform from a generator seeded by ``seed`` (the global random streams are left alone);
    returns each module's merged (L, R)."""
    generator = torch.Generator().manual_seed(seed)
    merged = {}
    for name, spec in live.specs().items():
        A, B = live.factors(name)
        left, right = lora_factors(B, A, spec.scaling, spec.transposed)
        live.add_to_base(name, left, right)
        fold(offsets, name, left, right)
        merged[name] = (left, right)
        fresh = torch.empty(A.shape, dtype=torch.float32)
        torch.nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=generator)
        live.write_factors(name, fresh, torch.zeros(B.shape))
    return merged


@torch.no_grad()
def refactored_factors(specs: dict, current: dict, extrapolation) -> tuple[dict, dict[str, float]]:
    """The live LoRA's new (A, B): the best rank-r approximation of Ŵ − W₀, A's rows at the scale of
    the ``current`` A (module → (A, B) at the jump step) and the magnitude in B; and each module's
    relative truncation error."""
    factors, errors = {}, {}
    for name, stack, update in extrapolation.module_updates():
        spec = specs[name]
        live_A, live_B = current[name]
        rank = live_A.shape[0]
        B, A = lora_pair(*factors_of(stack, update), 1.0, spec.transposed)
        B, A, errors[name] = truncate(B, A, rank)
        target = float(live_A.double().norm()) / max(rank, 1) ** 0.5 or 1.0
        norms = A.norm(dim=1).clamp_min(1e-30)
        A, B = A * (target / norms).unsqueeze(1), B * (norms / target).unsqueeze(0)
        new_A = torch.zeros(live_A.shape, dtype=torch.float64)
        new_B = torch.zeros(live_B.shape, dtype=torch.float64)
        new_A[: A.shape[0]] = A
        new_B[:, : B.shape[1]] = B / spec.scaling
        factors[name] = (new_A, new_B)
    return factors, errors
