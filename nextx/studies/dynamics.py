"""Runs with known dynamics, written by real PEFT on a tiny transformers Llama built from a config:
smooth LoRA trajectories (`default_dynamics`) and exactly rank-1 ones (`KNOWN_DYNAMICS`: linear,
accelerating, saturating, rotating σ(t)·u(t)·vᵀ). The tests' fixtures and the predictor benches
(`bench/epochs.py`, `bench/backtest_table.py`) build their runs with them (extra `train`)."""

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
