"""Find the checkpoints of an RLVR run on disk and describe its trained modules.

Layouts (auto-detected, or forced with ``layout=``):

- ``trl``       ``checkpoint-N/`` (TRL / HF Trainer; step from trainer_state.json when present)
- ``verl``      ``global_step_N/actor/lora_adapter/`` (+ ``actor/lora_train_meta.json``), or full
                weights in ``global_step_N/actor/huggingface/`` or ``global_step_N/hf_model/``
- ``openrlhf``  ``global_stepN_hf/``
- ``steps``     plain PEFT dirs named ``step_N``, ``step-N`` or ``N``
- ``explicit``  a mapping step → directory (``--checkpoint STEP=PATH``)

A checkpoint is a LoRA adapter (adapter_config.json + adapter_model.safetensors) or full weights
(model.safetensors or shards + index; W₀ from ``base``). Steps are the real step numbers.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from nextx.errors import CheckpointError, NoCheckpointsError, PredictorError, RunLayoutError
from nextx.io.adapter import ADAPTER_CONFIG, ADAPTER_STEM, LoraSettings, read_lora_settings
from nextx.io.jsonfile import read_json
from nextx.io.tensors import has_full_weights

LAYOUT_NAMES = ("trl", "verl", "openrlhf", "steps")


@dataclass(frozen=True)
class Checkpoint:
    """One saved state of the run: its training step and the directory holding its weights."""

    step: int
    path: Path
    kind: str  # "lora" or "full"


def _is_adapter_dir(path: Path) -> bool:
    return (path / ADAPTER_CONFIG).exists()


def _checkpoint_kind(path: Path) -> str | None:
    if _is_adapter_dir(path):
        return "lora"
    if has_full_weights(path):
        return "full"
    if any((path / f"{ADAPTER_STEM}{s}").exists() for s in (".bin", ".pt")):
        return "lora"
    return None


def _no_weights(directory: Path, what: str, hint: str) -> CheckpointError:
    """The error for a checkpoint without readable weights: FSDP's sharded format named as such."""
    if any(directory.glob("*.distcp")) or any(directory.glob("pytorch_model_fsdp_*/*.distcp")):
        return CheckpointError(
            "checkpoint holds FSDP sharded weights (torch.distributed.checkpoint .distcp files), which nextx does not "
            "read: their metadata is a pickle", path=directory,
            hint="Save full weights: fsdp_state_dict_type: FULL_STATE_DICT in the accelerate config writes the adapter "
                 "as adapter_model.safetensors (or load the checkpoint in your trainer and call save_pretrained).")
    return CheckpointError(what, path=directory, hint=hint)


def _verl_checkpoint_dir(step_dir: Path) -> Path:
    for candidate in (step_dir / "actor" / "lora_adapter", step_dir / "actor" / "huggingface", step_dir / "hf_model"):
        if _checkpoint_kind(candidate):
            return candidate
    raise CheckpointError(
        "verl checkpoint has no LoRA adapter or HF-format weights (only FSDP shards?)",
        path=step_dir,
        hint="Save full weights with hf_model in checkpoint.save_contents, or run verl's model_merger first.",
    )


_LAYOUTS: dict[str, tuple[re.Pattern, Callable[[Path], Path]]] = {
    "trl": (re.compile(r"^checkpoint-(\d+)$"), lambda d: d),
    "verl": (re.compile(r"^global_step_(\d+)$"), _verl_checkpoint_dir),
    "openrlhf": (re.compile(r"^global_step(\d+)_hf$"), lambda d: d),
    "steps": (re.compile(r"^(?:step[_-]?)?(\d+)$"), lambda d: d),
}


def _trainer_step(directory: Path, fallback: int) -> int:
    """The checkpoint's step: trainer_state.json's global_step (the trainer's own count), else the
    directory's number. A disagreement warns; a global_step that is no step number is refused."""
    state = directory / "trainer_state.json"
    if not state.exists():
        return fallback
    try:
        value = read_json(state)["global_step"]
    except (CheckpointError, KeyError, TypeError):
        warnings.warn(f"{state}: no readable global_step; using the directory's step {fallback}", stacklevel=2)
        return fallback
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CheckpointError(f"trainer_state.json has global_step {value!r}, not a step number", path=state,
                              hint=f"Fix it, or delete it to use the directory's step {fallback}.")
    if value != fallback:
        warnings.warn(f"{state}: global_step {value} disagrees with the directory's step {fallback}; using {value}",
                      stacklevel=2)
    return value


def _matches(root: Path, layout: str) -> list[tuple[int, Path]]:
    pattern, _ = _LAYOUTS[layout]
    found = []
    for child in sorted(root.iterdir()):
        match = pattern.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return found


def discover_checkpoints(root: Path, layout: str = "auto") -> tuple[str, list[Checkpoint]]:
    """(layout, checkpoints sorted by step) for a run directory; an unreadable directory in it is one
    line naming it."""
    try:
        return _discover(root, layout)
    except PermissionError as err:
        raise RunLayoutError(f"cannot read {err.filename or root}: {err.strerror}", path=root,
                             hint="Check the run's permissions (it must be readable by this user).") from None


def _discover(root: Path, layout: str) -> tuple[str, list[Checkpoint]]:
    if not root.exists():
        raise NoCheckpointsError("run directory does not exist", path=root)
    if not root.is_dir():
        raise RunLayoutError("run path is not a directory", path=root)
    if not any(root.iterdir()):
        raise NoCheckpointsError("run directory is empty", path=root)
    if layout == "auto":
        hits = {name: _matches(root, name) for name in LAYOUT_NAMES}
        # plain numbered dirs inside a trl/verl run are not a second layout
        hits = {name: found for name, found in hits.items() if found}
        if len(hits) > 1 and "steps" in hits:
            del hits["steps"]
        if not hits:
            single = " It holds a single checkpoint, not a run." if _checkpoint_kind(root) else ""
            raise NoCheckpointsError(
                "no checkpoints found",
                path=root,
                hint=f"Tried layouts: {', '.join(f'{n} ({_LAYOUTS[n][0].pattern})' for n in LAYOUT_NAMES)}.{single} "
                "Pass --checkpoint STEP=PATH for each checkpoint.",
            )
        if len(hits) > 1:
            names = " and ".join(f"{n} ({hits[n][0][1].name})" for n in hits)
            raise RunLayoutError(f"mixed checkpoint layouts: {names}", path=root, hint="Pass --layout to choose one.")
        layout = next(iter(hits))
        found = hits[layout]
    elif layout in _LAYOUTS:
        found = _matches(root, layout)
        if not found:
            raise RunLayoutError(f"no {layout} checkpoints ({_LAYOUTS[layout][0].pattern}) found", path=root)
    else:
        raise RunLayoutError(f"unknown layout {layout!r}", hint=f"Choose one of: auto, {', '.join(LAYOUT_NAMES)}.")
    _, locate = _LAYOUTS[layout]
    checkpoints = []
    for step, step_dir in found:
        directory = locate(step_dir)
        kind = _checkpoint_kind(directory)
        if kind is None:
            raise _no_weights(directory, "checkpoint has neither adapter_config.json nor model.safetensors",
                              "Delete the incomplete checkpoint or point nextx at the directory holding the weights.")
        checkpoints.append(Checkpoint(_trainer_step(step_dir, step), directory, kind))
    return layout, _sorted_unique(checkpoints)


def explicit_checkpoints(pairs: Iterable[tuple[int, str | Path]]) -> list[Checkpoint]:
    """Checkpoints from explicit (step, directory) pairs (a repeated step is an error)."""
    checkpoints = []
    for step, path in pairs:
        path = Path(path)
        if not path.is_dir():
            raise RunLayoutError(f"checkpoint for step {step} is not a directory", path=path)
        kind = _checkpoint_kind(path)
        if kind is None:
            raise _no_weights(path, "directory has neither adapter_config.json nor model.safetensors",
                              "Point nextx at the directory holding the weights.")
        checkpoints.append(Checkpoint(int(step), path, kind))
    seen: dict[Path, int] = {}
    for checkpoint in checkpoints:
        first = seen.setdefault(checkpoint.path.resolve(), checkpoint.step)
        if first != checkpoint.step:
            raise RunLayoutError(f"steps {first} and {checkpoint.step} name the same directory", path=checkpoint.path,
                                 hint="Give each --checkpoint its own directory.")
    return _sorted_unique(checkpoints)


def parse_checkpoint_args(values: list[str]) -> list[tuple[int, str]]:
    """['10=run/a', '20=run/b'] → [(10, 'run/a'), (20, 'run/b')] (duplicates kept for the check)."""
    pairs = []
    for value in values:
        step, sep, path = value.partition("=")
        if not sep or not step.strip().isdigit() or not path:
            raise RunLayoutError(f"--checkpoint {value!r} is not STEP=PATH", hint="Example: --checkpoint 10=runs/a/step10")
        pairs.append((int(step), path))
    return pairs


MAX_STEP = 10**9  # no RLVR run takes a billion optimizer steps; a larger number is a typo or a timestamp


def _sorted_unique(checkpoints: list[Checkpoint]) -> list[Checkpoint]:
    for checkpoint in checkpoints:
        if not 0 <= checkpoint.step <= MAX_STEP:
            raise RunLayoutError(f"step {checkpoint.step} of {checkpoint.path} is not a plausible training step",
                                 hint=f"Steps are 0…{MAX_STEP:,}; give the real step with --checkpoint STEP=PATH.")
    checkpoints = sorted(checkpoints, key=lambda c: c.step)
    for prev, cur in zip(checkpoints, checkpoints[1:], strict=False):
        if prev.step == cur.step:
            raise RunLayoutError(
                f"duplicate step {cur.step}: {prev.path} and {cur.path}",
                hint="Remove one of them, or list the checkpoints with --checkpoint STEP=PATH.",
            )
    kinds = {c.kind for c in checkpoints}
    if len(kinds) > 1:
        raise RunLayoutError("the run mixes LoRA adapters and full-weight checkpoints", path=checkpoints[0].path.parent)
    return checkpoints


def verl_meta(directory: Path) -> dict | None:
    """verl's actor/lora_train_meta.json (r, alpha) beside actor/lora_adapter, if present."""
    meta = directory.parent / "lora_train_meta.json"
    if directory.name == "lora_adapter" and meta.exists():
        value = read_json(meta)
        if not isinstance(value, dict):
            raise CheckpointError("lora_train_meta.json is not a JSON object", path=meta)
        return value
    return None


def lora_settings_for(checkpoint: Checkpoint, lora_alpha: float | None) -> LoraSettings:
    return read_lora_settings(checkpoint.path, lora_alpha=lora_alpha, meta=verl_meta(checkpoint.path))


def require_checkpoints(n_have: int, n_need: int, purpose: str) -> None:
    """PredictorError when the run has fewer checkpoints than ``purpose`` needs."""
    if n_have < n_need:
        raise PredictorError(
            f"{purpose} needs at least {n_need} checkpoints, the run has {n_have}",
            hint="Save checkpoints more often, or lower --horizon / --holdout.",
        )
