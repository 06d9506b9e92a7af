"""Where nextx computes: ``--device auto|cpu|cuda[:N]|mps`` resolved to a `torch.device`."""

from __future__ import annotations

import torch

from nextx.errors import DeviceError

DEVICE_HELP = "auto (CUDA when available, else the CPU), cpu, cuda, cuda:N or mps"


def resolve_device(name: str | torch.device) -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cpu', 'cuda', 'cuda:N', 'mps' as given, if present here."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}", hint="Choose auto, cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name} is not available here (no CUDA)", hint="Use --device cpu or auto.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"device {name} is not available here ({torch.cuda.device_count()} CUDA device(s))",
                          hint="Use --device cuda or auto.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device mps is not available here", hint="Use --device cpu or auto.")
    return device
