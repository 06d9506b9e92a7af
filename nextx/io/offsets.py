"""Base offsets: jumps folded into the frozen base weights, persisted beside later checkpoints.

An optimizer-preserving jump (``NExtCallback(apply="offset")``) adds the predicted change to the
frozen base weights, W₀ ← W₀ + Lⱼ·Rⱼ per module, and leaves the live LoRA factors and Adam's moments
alone. A checkpoint written after one or more such jumps holds the LoRA factors plus one file,

    nextx_base_offset.safetensors:  "<module>.left" (m×k), "<module>.right" (k×n)   (float32)

whose product is the accumulated offset in the stored weight's orientation, so the checkpoint's true
weights are W₀ + L·R + s·B·A. The reader appends (L, R) to the checkpoint's factors: `inspect`,
`fit`, `extrapolate`, `eval` and a second jump all see the true weights, and `nextx extrapolate
--method stay --ahead 0` writes them as a plain PEFT adapter of rank r + k.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from nextx.errors import CheckpointError
from nextx.io.write import atomic_write_text

OFFSET_FILE = "nextx_base_offset.safetensors"
JUMP_LOG = "nextx-jumps.json"
HISTORY_FILE = "nextx_base_history.safetensors"


def has_offset(checkpoint_dir: str | Path) -> bool:
    return (Path(checkpoint_dir) / OFFSET_FILE).is_file()


def read_offset_jumps(checkpoint_dir: str | Path) -> list[dict]:
    """The jumps a checkpoint's offset file says made it ([] without one)."""
    path = Path(checkpoint_dir) / OFFSET_FILE
    if not path.is_file():
        return []
    try:
        with safe_open(path, "pt") as handle:
            return json.loads((handle.metadata() or {}).get("jumps") or "[]")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"unreadable base offset: {err}", path=path) from None


def read_offsets(checkpoint_dir: str | Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Module name → (L, R) of the accumulated base offset of a checkpoint ({} if it has none)."""
    path = Path(checkpoint_dir) / OFFSET_FILE
    if not os.path.lexists(path):
        return {}
    if path.is_symlink() or not stat.S_ISREG(os.stat(path).st_mode):  # never a FIFO, a directory, a link
        raise CheckpointError(f"{OFFSET_FILE} is not a regular file", path=path,
                              hint="Restore the file nextx wrote, or remove this checkpoint.")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"unreadable base offset: {err}", path=path) from None
    offsets = {}
    for key in sorted(tensors):
        name, _, side = key.rpartition(".")
        if side not in ("left", "right") or f"{name}.left" not in tensors or f"{name}.right" not in tensors:
            raise CheckpointError(f"base offset key {key!r} is not one of a <module>.left / <module>.right pair",
                                  path=path)
        left, right = tensors[f"{name}.left"], tensors[f"{name}.right"]
        if (left.dim() != 2 or right.dim() != 2 or left.shape[1] != right.shape[0]
                or not left.is_floating_point() or not right.is_floating_point()):
            raise CheckpointError(f"base offset of {name} is malformed", path=path)
        if not (torch.isfinite(left).all() and torch.isfinite(right).all()):
            raise CheckpointError(f"base offset of {name} is not finite", path=path)
        offsets[name] = (left, right)
    return offsets


def write_offsets(checkpoint_dir: str | Path, offsets: dict[str, tuple[torch.Tensor, torch.Tensor]],
                  jumps: list[dict]) -> Path:
    """Write the accumulated offsets (and the jumps that made them, as metadata) into a checkpoint."""
    path = Path(checkpoint_dir) / OFFSET_FILE
    tensors = {}
    for name, (left, right) in offsets.items():
        tensors[f"{name}.left"] = left.to(torch.float32).contiguous()
        tensors[f"{name}.right"] = right.to(torch.float32).contiguous()
    tmp = path.with_name(f".{path.name}.nextx-tmp-{os.getpid()}")
    try:
        save_file(tensors, tmp, metadata={"format": "pt", "nextx": "base offset: W0 <- W0 + left @ right per module",
                                          "jumps": json.dumps(jumps)})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_jump_log(run_dir: str | Path, jumps: list[dict]) -> None:
    """The run's jump log (``nextx-jumps.json`` beside its checkpoints), written at each jump before
    any later checkpoint: a checkpoint saved after an offset jump without its offset file (a kill in
    between) is then refused by every reader instead of read as other weights."""
    atomic_write_text(Path(run_dir) / JUMP_LOG, json.dumps({"jumps": jumps}, indent=2, default=str))


def read_jump_log(run_dir: str | Path) -> list[dict]:
    """The jumps recorded in a run directory's ``nextx-jumps.json`` ([] without one)."""
    path = Path(run_dir) / JUMP_LOG
    if not path.is_file():
        return []
    try:
        jumps = json.loads(path.read_text()).get("jumps")
    except (OSError, ValueError, AttributeError) as err:
        raise CheckpointError(f"unreadable jump log: {err}", path=path) from None
    if not isinstance(jumps, list) or not all(isinstance(j, dict) and isinstance(j.get("step"), int) for j in jumps):
        raise CheckpointError("the jump log is not a list of jumps with integer steps", path=path)
    return jumps


def offset_jump_steps(jumps: list[dict]) -> list[int]:
    """Steps of the jumps that moved the base weights (offset or merge)."""
    return [j["step"] for j in jumps if j.get("jumped") and j.get("apply") in ("offset", "merge")]


def check_offsets_present(run_dir: Path | None, checkpoints) -> None:
    """CheckpointError for a checkpoint that should carry a base offset and does not: one saved after
    an offset jump of the run's jump log, or one between checkpoints that carry offsets."""
    lora = [c for c in checkpoints if c.kind == "lora"]
    first = min(offset_jump_steps(read_jump_log(run_dir)), default=None) if run_dir is not None else None
    carrying = [c.step for c in lora if has_offset(c.path)]
    for checkpoint in lora:
        after_jump = first is not None and checkpoint.step > first
        after_offset = any(step < checkpoint.step for step in carrying)
        if (after_jump or after_offset) and not has_offset(checkpoint.path):
            raise CheckpointError(
                f"checkpoint at step {checkpoint.step} was saved after a jump folded into the base but has no "
                f"{OFFSET_FILE}: its weights would read as other than were trained", path=checkpoint.path,
                hint="It was interrupted while saving: delete it (and later ones) and resume from the one before.")


def accumulate(offsets: dict[str, tuple[torch.Tensor, torch.Tensor]], name: str, left: torch.Tensor,
               right: torch.Tensor) -> None:
    """Add L·R to a module's offset (factors concatenated: the sum stays exact)."""
    if name in offsets:
        old_left, old_right = offsets[name]
        left, right = torch.cat([old_left, left.to(old_left.dtype)], 1), torch.cat([old_right, right.to(old_right.dtype)], 0)
    offsets[name] = (left.to(torch.float32), right.to(torch.float32))


def write_base_history(checkpoint_dir: str | Path, additions: list[dict[str, tuple[torch.Tensor, torch.Tensor]]]) -> Path:
    """Every change the jumps made to the base weights, in order (``nextx_base_history.safetensors``:
    "<k>/<module>.left|right", float64): a resume replays them for bit-identical base weights, where
    adding their compacted sum (`OFFSET_FILE`) would round differently."""
    path = Path(checkpoint_dir) / HISTORY_FILE
    tensors = {f"{k}/{name}.{side}": factor.to(torch.float64).contiguous().clone()
               for k, changes in enumerate(additions) for name, pair in changes.items()
               for side, factor in zip(("left", "right"), pair, strict=True)}
    tmp = path.with_name(f".{path.name}.nextx-tmp-{os.getpid()}")
    try:
        save_file(tensors, tmp, metadata={"format": "pt", "additions": str(len(additions))})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_base_history(checkpoint_dir: str | Path) -> list[dict[str, tuple[torch.Tensor, torch.Tensor]]] | None:
    """The base changes `write_base_history` wrote, in order (None without the file)."""
    path = Path(checkpoint_dir) / HISTORY_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(path, "pt") as handle:
            count = int((handle.metadata() or {}).get("additions", "0"))
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open has no items
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"unreadable base history: {err}", path=path) from None
    additions: list[dict] = [{} for _ in range(count)]
    for key, left in tensors.items():
        if key.endswith(".left"):
            index, _, name = key.removesuffix(".left").partition("/")
            if not index.isdigit() or int(index) >= count or f"{index}/{name}.right" not in tensors:
                raise CheckpointError(f"base history entry {key} is malformed", path=path)
            additions[int(index)][name] = (left, tensors[f"{index}/{name}.right"])
    return additions
