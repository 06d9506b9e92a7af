"""Planning a merged output: where each tensor comes from (the base, or the run's last checkpoint),
which ones receive W₀ + ΔŴ, and how each is stored — fixed from the headers before any is computed.
Also the output's config.json dtype."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from nextx.errors import NextxError
from nextx.io.adapter import KEY_PREFIX
from nextx.io.run import Run
from nextx.io.shards import TensorEntry
from nextx.io.tensors import ShardedSafetensors
from nextx.io.write import write_json


@dataclass
class MergedPlan:
    """``entries``: every output tensor (name, dtype, shape) in the base's order; ``trained``: tensor
    key → module that gets W₀ + ΔŴ; ``carried``: tensor key → its name in the run's last checkpoint
    (taken from there instead of the base)."""

    base: Path
    weights: ShardedSafetensors
    last_checkpoint: object
    trained: dict[str, str]
    carried: dict[str, str]
    entries: list[TensorEntry]

    def source(self, key: str):
        """The file a tensor is read from: the run's last checkpoint or the base."""
        return self.last_checkpoint if key in self.carried else self.weights

    def stored(self, key: str) -> str:
        """The tensor's name in its source."""
        return self.carried.get(key, key)


def plan_merged(run: Run, base: Path, dtype: torch.dtype | None) -> MergedPlan:
    """The plan for W₀ + ΔŴ of ``run`` on ``base``; floating tensors stored in ``dtype`` when given.
    Tensors from the last checkpoint: a full run's untrained ones, a LoRA run's modules_to_save (saved
    by PEFT as base_model.model.<module>[.modules_to_save.<name>].weight)."""
    weights = ShardedSafetensors(base)
    trained = {spec.keys[0] if run.kind == "full" else f"{name}.weight": name for name, spec in run.modules.items()}
    missing = set(trained) - set(weights.keys())
    if missing:
        raise NextxError(f"base has no weight {sorted(missing)[0]}", path=base, hint="Pass the run's base model.")
    if run.kind == "full":
        carried = {key: key for key in run.passthrough_keys}
    else:
        carried = {re.sub(r"\.modules_to_save\.[^.]+", "", key.removeprefix(KEY_PREFIX)): key
                   for key in run.passthrough_keys}
    plan = MergedPlan(base, weights, run.checkpoint_file(len(run.steps) - 1), trained, carried, [])
    for key in weights.keys():
        kind = plan.source(key).dtype(plan.stored(key))
        plan.entries.append(TensorEntry(key, dtype if dtype and kind.is_floating_point else kind,
                                        plan.source(key).shape(plan.stored(key))))
    return plan


def set_config_dtype(config_path: Path, dtype: str) -> None:
    """config.json says the dtype the weights are stored in (``torch_dtype``, and ``dtype`` in
    transformers ≥ 4.56), so loaders do not up- or down-cast them on load."""
    if not config_path.exists():
        return
    config = json.loads(config_path.read_text())
    config["torch_dtype"] = dtype
    if "dtype" in config:
        config["dtype"] = dtype
    write_json(config_path, config)
