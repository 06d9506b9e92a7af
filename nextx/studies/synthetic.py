"""Synthetic LoRA runs shaped like real models, written as PEFT adapters (bf16 safetensors).

Dynamics per module: B_t = c(t)·b·gᵀ + ε_t (a dominant rank-1 direction whose coefficient follows
a saturating curve c(t), plus a slowly rotating remainder and noise); A_t drifts slowly from A_0.
Used by the speed benches only (`python -m nextx.studies.synthetic OUT` writes one); tests build their runs with real PEFT.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

SHAPES = {
    # name: (layers, hidden, intermediate, kv_dim)
    "qwen2.5-14b": (48, 5120, 13824, 1024),
    "qwen2.5-7b": (28, 3584, 18944, 512),
    "qwen2.5-0.5b": (24, 896, 4864, 128),
    "tiny": (2, 64, 128, 16),
}


def module_shapes(shape: str, layers: int | None = None) -> dict[str, tuple[int, int]]:
    """Module path → (out, in) for the 7 linear modules of every layer (of the first ``layers``)."""
    all_layers, hidden, inter, kv = SHAPES[shape]
    layers = all_layers if layers is None else min(layers, all_layers)
    per_layer = {
        "self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (kv, hidden), "self_attn.v_proj": (kv, hidden),
        "self_attn.o_proj": (hidden, hidden), "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden),
        "mlp.down_proj": (hidden, inter),
    }
    return {f"model.layers.{i}.{name}": s for i in range(layers) for name, s in per_layer.items()}


def write_run(root: Path, shape: str, steps: list[int], rank: int = 64, alpha: float = 32, seed: int = 0,
              layers: int | None = None) -> Path:
    """One TRL-layout checkpoint per step (adapter_model.safetensors in bf16 + adapter_config.json), with
    the modules of every layer (or of the first ``layers``)."""
    modules = module_shapes(shape, layers)
    config = {
        "peft_type": "LORA", "r": rank, "lora_alpha": alpha, "target_modules": sorted({n.rsplit(".", 1)[1] for n in modules}),
        "fan_in_fan_out": False, "use_rslora": False, "use_dora": False, "rank_pattern": {}, "alpha_pattern": {},
        "task_type": "CAUSAL_LM", "base_model_name_or_path": f"synthetic-{shape}",
    }
    horizon = max(steps)
    for step in steps:
        tensors = {}
        for index, (name, (out, inp)) in enumerate(modules.items()):
            g = torch.Generator().manual_seed(seed * 100003 + index)
            a0 = torch.randn(rank, inp, generator=g) / math.sqrt(inp)
            a_drift = torch.randn(rank, inp, generator=g) / math.sqrt(inp)
            b_dir = torch.randn(out, 1, generator=g)
            g_dir = torch.randn(1, rank, generator=g)
            b_rest = torch.randn(out, rank, generator=g)
            noise = torch.Generator().manual_seed(seed * 100003 + index + 7919 * step)
            x = step / horizon
            coef = 1e-3 * (1 - math.exp(-3 * x)) / (1 - math.exp(-3))
            B = coef * b_dir @ g_dir + 2e-4 * x * b_rest + 2e-5 * torch.randn(out, rank, generator=noise)
            A = a0 + 0.05 * x * a_drift
            tensors[f"base_model.model.{name}.lora_A.weight"] = A.bfloat16().contiguous()
            tensors[f"base_model.model.{name}.lora_B.weight"] = B.bfloat16().contiguous()
        out_dir = root / f"checkpoint-{step}"
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file(tensors, out_dir / "adapter_model.safetensors", metadata={"format": "pt"})
        (out_dir / "adapter_config.json").write_text(json.dumps(config))
    return root


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Write a synthetic LoRA run (TRL layout, bf16 adapters).")
    parser.add_argument("out", type=Path)
    parser.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    parser.add_argument("--checkpoints", type=int, default=12)
    parser.add_argument("--every", type=int, default=10, help="steps between checkpoints")
    parser.add_argument("--rank", type=int, default=8)
    args = parser.parse_args()
    steps = [args.every * (i + 1) for i in range(args.checkpoints)]
    print(write_run(args.out, args.shape, steps, rank=args.rank))


if __name__ == "__main__":
    main()
