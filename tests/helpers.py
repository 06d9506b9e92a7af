"""Builders for real, tiny runs: a transformers Llama from a config and PEFT-saved adapters."""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable
from pathlib import Path

import torch

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_tiny_model(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def save_base(path: Path, seed: int = 0) -> Path:
    build_tiny_model(seed).save_pretrained(path)
    return path


def default_dynamics(step: int, name: str, factor: str, shape: tuple[int, int]) -> torch.Tensor:
    """A smooth, deterministic LoRA trajectory: B grows ~linearly, A drifts slowly."""
    g = torch.Generator().manual_seed(zlib.crc32(f"{name}/{factor}".encode()))
    start = torch.randn(shape, generator=g)
    direction = torch.randn(shape, generator=g)
    if factor == "A":
        return start / math.sqrt(shape[1]) + 0.002 * step * direction / math.sqrt(shape[1])
    return 0.01 * step * start + 0.0005 * step**1.5 * direction


def save_lora_checkpoints(
    base_path: Path,
    out_dirs: dict[int, Path],
    *,
    r: int = 4,
    alpha: float = 8,
    targets: list[str] | None = None,
    use_rslora: bool = False,
    rank_pattern: dict | None = None,
    alpha_pattern: dict | None = None,
    dynamics: Callable = default_dynamics,
    dtype: torch.dtype = torch.float32,
    trainer_state: bool = False,
    fan_in_fan_out: bool = False,
) -> None:
    """Write one real PEFT adapter per step, with LoRA factors set by ``dynamics(step, module, A|B, shape)``."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_path)
    config = LoraConfig(
        r=r, lora_alpha=alpha, target_modules=targets or TARGETS, use_rslora=use_rslora,
        rank_pattern=rank_pattern or {}, alpha_pattern=alpha_pattern or {}, lora_dropout=0.0,
        fan_in_fan_out=fan_in_fan_out,
    )
    model = get_peft_model(model, config)
    for step, out in out_dirs.items():
        with torch.no_grad():
            for name, module in model.named_modules():
                if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
                    clean = name.removeprefix("base_model.model.")
                    for factor, layer in (("A", module.lora_A["default"]), ("B", module.lora_B["default"])):
                        layer.weight.copy_(dynamics(step, clean, factor, tuple(layer.weight.shape)).to(dtype))
        model.save_pretrained(out)
        if trainer_state:
            (out / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def make_lora_run(
    root: Path, base_path: Path, steps: list[int], layout: str = "trl", **kwargs
) -> Path:
    """A run directory in one of the layouts nextx reads, holding real PEFT adapters."""
    names = {
        "trl": lambda s: root / f"checkpoint-{s}",
        "verl": lambda s: root / f"global_step_{s}" / "actor" / "lora_adapter",
        "openrlhf": lambda s: root / f"global_step{s}_hf",
        "steps": lambda s: root / f"step_{s}",
    }
    dirs = {s: names[layout](s) for s in steps}
    save_lora_checkpoints(base_path, dirs, trainer_state=layout == "trl", **kwargs)
    return root


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


def rank1_dynamics(sigma: Callable[[int], float], omega: float = 0.0, scale: float = 2.0) -> Callable:
    """LoRA factors whose update is exactly s·B·A = σ(t)·u(t)·vᵀ, u(t) = cos(ωt)·a + sin(ωt)·b
    (orthonormal a, b and unit v drawn per module): known rank-1 dynamics for predictor tests."""

    def dynamics(step: int, name: str, factor: str, shape: tuple[int, int]) -> torch.Tensor:
        g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        if factor == "A":
            rows = torch.randn(shape, generator=g) / math.sqrt(shape[1])
            v = rows[0] / rows[0].norm()
            return torch.cat([v.unsqueeze(0), rows[1:]])
        basis, _ = torch.linalg.qr(torch.randn(shape[0], 2, generator=g))
        u = math.cos(omega * step) * basis[:, 0] + math.sin(omega * step) * basis[:, 1]
        B = torch.zeros(shape)
        B[:, 0] = sigma(step) / scale * u
        return B

    return dynamics


KNOWN_DYNAMICS = {
    "linear": rank1_dynamics(lambda t: 0.05 * t),
    "accelerating": rank1_dynamics(lambda t: 5e-4 * t * t),
    "saturating": rank1_dynamics(lambda t: 5.0 * (1 - math.exp(-t / 100))),
    "rotating": rank1_dynamics(lambda t: 0.05 * t, omega=0.01),
}


def raises_whole(kind: type[BaseException], message: str):
    """``pytest.raises`` that compares the exception's whole text, not a fragment of it."""
    import re

    import pytest

    return pytest.raises(kind, match=f"^{re.escape(message)}$")
