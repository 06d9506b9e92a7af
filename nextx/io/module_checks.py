"""Consistency checks of a run's modules: every checkpoint trains the same ones, with the same shapes,
ranks and scalings; the base holds a weight of the adapter's shape for each."""

from __future__ import annotations

from pathlib import Path

from nextx.errors import CheckpointError
from nextx.io.discover import Checkpoint
from nextx.io.tensors import ShardedSafetensors


def check_same_modules(ref_ckpt: Checkpoint, ref: dict, ckpt: Checkpoint, specs: dict) -> None:
    if set(ref) != set(specs):
        extra = sorted(set(specs) - set(ref))
        missing = sorted(set(ref) - set(specs))
        detail = "; ".join(
            part for part in (f"adds {extra[0]}" if extra else "", f"lacks {missing[0]}" if missing else "") if part
        )
        raise CheckpointError(
            f"checkpoint at step {ckpt.step} trains different modules than step {ref_ckpt.step} ({detail})",
            path=ckpt.path,
            hint="All checkpoints of a run must share target modules; pass the consistent ones with --checkpoint.",
        )
    for name, spec in specs.items():
        if (spec.shape, spec.rank, spec.scaling) != (ref[name].shape, ref[name].rank, ref[name].scaling):
            raise CheckpointError(
                f"module {name} changes shape, rank or scaling between steps {ref_ckpt.step} and {ckpt.step}",
                path=ckpt.path,
            )


def check_base_shapes(run, base: Path) -> None:
    weights = ShardedSafetensors(base)
    keys = set(weights.keys())
    for name, spec in run.modules.items():
        key = f"{name}.weight"
        if key not in keys:
            raise CheckpointError(f"base has no weight {key} for the adapter's module", path=base,
                                  hint="Pass the base model the run was trained from with --base.")
        if tuple(weights.shape(key)) != spec.shape:
            raise CheckpointError(
                f"shape of {key} is {list(weights.shape(key))} in the base but {list(spec.shape)} in the adapter",
                path=base, hint="Pass the base model the run was trained from with --base.",
            )
