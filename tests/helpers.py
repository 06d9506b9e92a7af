"""Builders for real, tiny runs: a transformers Llama from a config and PEFT-saved adapters
(`nextx.studies.dynamics`, shared with the benches), and the tests' own helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from nextx.studies.dynamics import (  # noqa: F401 - the tests import them from here
    KNOWN_DYNAMICS,
    TARGETS,
    build_tiny_model,
    default_dynamics,
    make_lora_run,
    rank1_dynamics,
    save_base,
    save_lora_checkpoints,
)


def save_gpt2_base(path: Path) -> Path:
    """A tiny GPT-2 (Conv1D layers: PEFT uses fan_in_fan_out=True)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=1, n_head=2)).save_pretrained(path)
    return path


def make_full_run(root: Path, base_path: Path, steps: list[int], trained=("q_proj", "down_proj")) -> Path:
    """Full-weight TRL-layout checkpoints: W_t = W₀ + a rank-1 update growing with t (+ small noise)
    on the ``trained`` modules, and a changed norm vector; everything else equals W₀."""
    from safetensors.torch import load_file, save_file

    weights = load_file(base_path / "model.safetensors")
    g = torch.Generator().manual_seed(0)
    directions = {
        key: (torch.randn(w.shape[0], generator=g), torch.randn(w.shape[1], generator=g))
        for key, w in weights.items() if w.ndim == 2 and key.split(".")[-2] in trained
    }
    for step in steps:
        state = {}
        for key, w in weights.items():
            w = w.clone()
            if key in directions:
                u, v = directions[key]
                w += 1e-3 * step * torch.outer(u, v) + 1e-5 * torch.randn(w.shape, generator=g)
            if key.endswith("input_layernorm.weight"):
                w += 1e-3 * step
            state[key] = w.contiguous()
        out = root / f"checkpoint-{step}"
        out.mkdir(parents=True)
        save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    return root


def load_lora_delta(adapter_dir: Path, module: str) -> torch.Tensor:
    """Dense s·B·A of one module, read straight from the adapter files (test oracle)."""
    from safetensors.torch import load_file

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    tensors = load_file(adapter_dir / "adapter_model.safetensors")
    A = tensors[f"base_model.model.{module}.lora_A.weight"].double()
    B = tensors[f"base_model.model.{module}.lora_B.weight"].double()
    r = A.shape[0]
    alpha = config["alpha_pattern"].get(module.rsplit(".", 1)[-1], config["lora_alpha"])
    scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    return scale * B @ A


def raises_whole(kind: type[BaseException], message: str):
    """``pytest.raises`` that compares the exception's whole text, not a fragment of it."""
    import re

    import pytest

    return pytest.raises(kind, match=f"^{re.escape(message)}$")
