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
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from nextx.errors import CheckpointError

OFFSET_FILE = "nextx_base_offset.safetensors"


def has_offset(checkpoint_dir: str | Path) -> bool:
    return (Path(checkpoint_dir) / OFFSET_FILE).is_file()


def read_offsets(checkpoint_dir: str | Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Module name → (L, R) of the accumulated base offset of a checkpoint ({} if it has none)."""
    path = Path(checkpoint_dir) / OFFSET_FILE
    if not path.is_file():
        return {}
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"unreadable base offset: {err}", path=path) from None
    offsets = {}
    for key, left in tensors.items():
        if key.endswith(".left"):
            name = key.removesuffix(".left")
            right = tensors.get(f"{name}.right")
            if right is None or left.dim() != 2 or right.dim() != 2 or left.shape[1] != right.shape[0]:
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
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, tmp, metadata={"format": "pt", "nextx": "base offset: W0 <- W0 + left @ right per module",
                                      "jumps": json.dumps(jumps)})
    tmp.replace(path)
    return path


def accumulate(offsets: dict[str, tuple[torch.Tensor, torch.Tensor]], name: str, left: torch.Tensor,
               right: torch.Tensor) -> None:
    """Add L·R to a module's offset (factors concatenated: the sum stays exact)."""
    if name in offsets:
        old_left, old_right = offsets[name]
        left, right = torch.cat([old_left, left.to(old_left.dtype)], 1), torch.cat([old_right, right.to(old_right.dtype)], 0)
    offsets[name] = (left.to(torch.float32), right.to(torch.float32))
