"""PEFT LoRA adapters: adapter_config.json → per-module scaling; tensors → factors with ΔW = L·R.

PEFT merges ``ΔW = s·B·A`` (transposed when ``fan_in_fan_out``) with ``s = alpha / r``, or
``alpha / sqrt(r)`` with ``use_rslora``; ``rank_pattern`` / ``alpha_pattern`` override r and alpha
for module paths matching ``(.*\\.)?PATTERN$``. DoRA's magnitude vector makes the merge non-low-rank,
so DoRA adapters are refused. verl's model_merger writes ``"lora_alpha": 0``, which would silently
give ΔW = 0: it is refused unless the caller passes the real alpha.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nextx.errors import CheckpointError, UnsupportedAdapterError
from nextx.io.jsonfile import read_json

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_STEM = "adapter_model"
KEY_PREFIX = "base_model.model."
_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.(?:lora_(?P<factor>[AB])(?:\.[^.]+)?\.weight"
                       r"|lora_embedding_(?P<efactor>[AB])(?:\.[^.]+)?)$")  # Linear/Conv1D, or Embedding (no .weight)


@dataclass(frozen=True)
class LoraSettings:
    """The adapter_config.json fields that decide ΔW = s·B·A."""

    r: int
    lora_alpha: float
    use_rslora: bool = False
    fan_in_fan_out: bool = False
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)
    target_modules: list[str] | str | None = None
    base_model_name_or_path: str | None = None
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def rank_for(self, module: str) -> int:
        return int(self.rank_pattern[_pattern_key(self.rank_pattern, module)]) if _match(self.rank_pattern, module) else self.r

    def alpha_for(self, module: str) -> float:
        if _match(self.alpha_pattern, module):
            return float(self.alpha_pattern[_pattern_key(self.alpha_pattern, module)])
        return self.lora_alpha

    def scaling_for(self, module: str) -> float:
        """s = alpha / r, or alpha / sqrt(r) with rsLoRA, using the module's pattern overrides."""
        r = self.rank_for(module)
        alpha = self.alpha_for(module)
        return alpha / math.sqrt(r) if self.use_rslora else alpha / r


def _pattern_key(patterns: dict, module: str) -> str:
    return next(key for key in patterns if re.match(rf"(.*\.)?({key})$", module))


def _match(patterns: dict, module: str) -> bool:
    return any(re.match(rf"(.*\.)?({key})$", module) for key in patterns)


def _number(value, name: str, path: Path) -> float | None:
    """A config number (None if absent); CheckpointError naming the field if it is not one."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise CheckpointError(f"adapter_config.json has {name} = {value!r}, not a number", path=path,
                              hint=f"Set \"{name}\" to the value used in training.")
    return float(value)


def read_lora_settings(directory: Path, *, lora_alpha: float | None = None, meta: dict | None = None) -> LoraSettings:
    """Parse and validate adapter_config.json (``meta`` = verl's lora_train_meta.json, if any)."""
    path = directory / ADAPTER_CONFIG
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise CheckpointError("adapter_config.json is not a JSON object", path=path,
                              hint="Write the adapter with PEFT's save_pretrained.")
    peft_type = str(raw.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        raise UnsupportedAdapterError(f"peft_type {peft_type} is not supported, only LoRA", path=path)
    if raw.get("use_dora"):
        raise UnsupportedAdapterError(
            "DoRA adapters are not supported: the magnitude vector makes the update non-low-rank",
            path=path,
            hint="Train with use_dora=False to use nextx.",
        )
    for field_name in ("rank_pattern", "alpha_pattern"):
        for pattern in dict(raw.get(field_name) or {}):
            try:
                re.compile(pattern)
            except re.error as err:
                raise CheckpointError(f"adapter_config.json {field_name} has an invalid pattern {pattern!r}: {err}",
                                      path=path, hint="Use PEFT's module-name patterns (regular expressions).") from None
    meta = meta or {}
    config_alpha = _number(raw.get("lora_alpha"), "lora_alpha", path)
    meta_alpha = _number(meta.get("lora_alpha", meta.get("alpha")), "alpha", path)
    if lora_alpha is not None:
        alpha = lora_alpha
    elif config_alpha:  # adapter_config.json wins: verl's meta file stores alpha as an integer
        alpha = config_alpha
        if meta_alpha and meta_alpha != config_alpha:
            warnings.warn(f"{path}: lora_train_meta.json says alpha {meta_alpha:g}, adapter_config.json says "
                          f"{config_alpha:g}; using adapter_config.json", stacklevel=2)
    else:
        alpha = meta_alpha
    if alpha is None or float(alpha) == 0:
        raise UnsupportedAdapterError(
            "adapter_config.json has lora_alpha 0 (as verl's model_merger writes), which would make every update zero",
            path=path,
            hint="Pass the alpha used in training with --lora-alpha.",
        )
    if alpha < 0:
        raise CheckpointError(f"adapter_config.json has a negative lora_alpha ({alpha:g})", path=path,
                              hint="Pass the alpha used in training with --lora-alpha.")
    r = raw["r"] if "r" in raw else meta.get("r", meta.get("lora_rank"))
    if r is None:
        raise CheckpointError("adapter_config.json has no LoRA rank r", path=path)
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise CheckpointError(f"adapter_config.json has r = {r!r}, not a positive integer", path=path,
                              hint="Set \"r\" to the LoRA rank the adapter was trained with.")
    return LoraSettings(
        r=int(r),
        lora_alpha=float(alpha),
        use_rslora=bool(raw.get("use_rslora", False)),
        fan_in_fan_out=bool(raw.get("fan_in_fan_out", False)),
        rank_pattern=dict(raw.get("rank_pattern") or {}),
        alpha_pattern=dict(raw.get("alpha_pattern") or {}),
        target_modules=raw.get("target_modules"),
        base_model_name_or_path=raw.get("base_model_name_or_path"),
        raw=raw,
    )


def lora_modules(keys: list[str], path: Path) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Map module path → {"A": key, "B": key}; also return the keys that are not LoRA factors."""
    modules: dict[str, dict[str, str]] = {}
    other: list[str] = []
    for key in keys:
        if "lora_magnitude_vector" in key:
            raise UnsupportedAdapterError(
                f"DoRA magnitude vector {key} found: DoRA updates are not low-rank", path=path,
                hint="Train with use_dora=False to use nextx.",
            )
        match = _LORA_KEY.match(key)
        if match:
            factors = modules.setdefault(match["module"], {})
            factors[match["factor"] or match["efactor"]] = key
            if match["efactor"]:
                factors["kind"] = "embedding"
        else:
            other.append(key)
    for module, factors in modules.items():
        if not {"A", "B"} <= set(factors):
            missing = ({"A", "B"} - set(factors)).pop()
            raise CheckpointError(f"module {module} has no lora_{missing} tensor", path=path)
    return modules, other


def lora_factors(
    B: torch.Tensor, A: torch.Tensor, scaling: float, fan_in_fan_out: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L, R) in float64 with L·R = the update of the stored weight: s·B·A, or (s·B·A)ᵀ with
    fan_in_fan_out. s scales the smaller factor; L's transpose is contiguous (as `FactorStack` keeps it)."""
    B = B.T.contiguous().to(torch.float64).T  # m×r whose transpose is row-major: transposed in the narrow dtype
    A = A.to(torch.float64)
    if B.numel() <= A.numel():
        B = scaling * B
    else:
        A = scaling * A
    if fan_in_fan_out:
        return A.T, B.T
    return B, A


def lora_pair(left: torch.Tensor, right: torch.Tensor, scaling: float, fan_in_fan_out: bool
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, A) with s·B·A = L·R (or (L·R)ᵀ with fan_in_fan_out): the inverse of `lora_factors`."""
    if fan_in_fan_out:
        return right.T / scaling, left.T
    return left / scaling, right


def adapter_config(settings, ranks: dict[str, int], scalings: dict[str, float]) -> dict:
    """adapter_config.json for the new ranks: r / lora_alpha for the most common (rank, scaling),
    exact per-module rank_pattern / alpha_pattern entries (regex-escaped paths) for the rest."""
    def alpha_for(rank: int, scaling: float) -> float:
        return scaling * (math.sqrt(rank) if settings.use_rslora else rank)

    pairs = [(ranks[n], scalings[n]) for n in ranks]
    common_rank, common_scaling = max(set(pairs), key=pairs.count)
    rank_pattern, alpha_pattern = {}, {}
    for name in ranks:
        if (ranks[name], scalings[name]) != (common_rank, common_scaling):
            rank_pattern[re.escape(name)] = ranks[name]
            alpha_pattern[re.escape(name)] = alpha_for(ranks[name], scalings[name])
    config = dict(settings.raw)
    config.update(r=common_rank, lora_alpha=alpha_for(common_rank, common_scaling), rank_pattern=rank_pattern,
                  alpha_pattern=alpha_pattern, inference_mode=False, use_dora=False)
    return config
