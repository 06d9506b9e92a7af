"""What a speed figure was measured on: the CPU model, its widest vector units, cores, torch.

The same bench on two hosts of "2 cores" differed 2× in this project (one had AVX-512, one AVX2
only), so every speed bench prints this line first."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def describe() -> str:
    """e.g. 'AMD EPYC, AVX2 (no AVX-512), 2 cores; torch 2.13.0, 2 threads'."""
    model, flags = "unknown CPU", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    if "avx512f" in flags:
        vector = "AVX-512" + (" with BF16" if "avx512_bf16" in flags else "")
    elif "avx2" in flags:
        vector = "AVX2 (no AVX-512)"
    else:
        vector = "no AVX2" if flags else "vector units unknown"
    return (f"{model}, {vector}, {os.cpu_count()} cores; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")
