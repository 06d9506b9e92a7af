"""A worker of the multi-process tests, started by torchrun with 2 processes (gloo on CPU).

    python -m torch.distributed.run --nproc_per_node 2 tests/ddp_worker.py engine|fsdp1|fsdp2|trl OUT MODEL

engine, fsdp1, fsdp2: a PEFT model (plain as under DDP, or sharded by FSDP1 / FSDP2) trained
identically on each rank, with a JumpEngine whose settings differ by rank: rank 0's decision must
be applied on every rank.
trl: nextx's GRPO trainer (TRL, DDP) with offset jumps in the loop.
Each rank writes its final effective weights to OUT/rank<r>.safetensors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))


def effective(model) -> dict[str, torch.Tensor]:
    from nextx.jump.live import lora_layers, whole

    return {n: (whole(m.base_layer.weight).detach().double() + m.scaling["default"]
                * whole(m.lora_B["default"].weight).detach().double() @ whole(m.lora_A["default"].weight).detach().double())
            .contiguous() for n, m in lora_layers(model).items()}


def _wrapped(model, wrap: str):
    """The model as DDP trains it (unwrapped here), or sharded by FSDP1 / FSDP2 (fully_shard per layer)."""
    if wrap == "fsdp1":
        from torch.distributed.fsdp import FullyShardedDataParallel

        return FullyShardedDataParallel(model, device_id=torch.device("cpu"), use_orig_params=True)
    if wrap == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        for layer in model.base_model.model.model.layers:
            fully_shard(layer)
        return fully_shard(model)
    return model


def engine_run(out: Path, wrap: str = "none") -> None:
    """Identical fake training on every rank; the jump settings differ by rank (rank 1 would jump 3×
    further): rank 0's decision must land on every rank, through whatever shards the weights."""
    import contextlib

    from helpers import build_tiny_model
    from peft import LoraConfig, get_peft_model

    from nextx.jump import JumpEngine, JumpPace, PeftLiveModel

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = _wrapped(get_peft_model(build_tiny_model(0), LoraConfig(r=4, lora_alpha=8,
                                                                    target_modules=["q_proj", "down_proj"])), wrap)
    engine = JumpEngine(JumpPace(at=2, every=2), method="linear", ahead=1 if rank == 0 else 3, horizon=1)
    live = PeftLiveModel(model)
    snapshots = {}
    for step in range(1, 6):
        with live.gathered(), torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.add_(0.01 * step)
        with live.gathered():
            snapshots[step] = effective(model)
            engine.observe(step, live)
            engine.maybe_jump(step, 6, live)
        with live.gathered() if wrap == "fsdp1" else contextlib.nullcontext():
            snapshots[f"after{step}"] = effective(model)
    save_file({f"{k}|{n}": t for k, ws in snapshots.items() for n, t in ws.items()}, out / f"rank{rank}.safetensors")
    dist.destroy_process_group()


def trl_run(out: Path, model_path: str) -> None:
    from transformers import TrainerCallback

    from nextx.train.config import GRPORunConfig
    from nextx.train.grpo import train

    class Dump(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kwargs):
            save_file(effective(model), out / f"rank{state.process_index if hasattr(state, 'process_index') else os.environ['RANK']}.safetensors")

    config = GRPORunConfig(output_dir=str(out / "run"), model=model_path, task="addition", steps=4, save_every=1,
                           prompts_per_step=4, num_generations=4, lora_r=4, lora_alpha=8, learning_rate=3e-3,
                           next_at=2, next_every=1, next_method="linear", next_ahead=1, next_horizon=1)
    train(config, callbacks=[Dump()], log=lambda m: print(f"rank {os.environ['RANK']}: {m}", flush=True))


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    trl_run(out, sys.argv[3]) if mode == "trl" else engine_run(out, {"engine": "none"}.get(mode, mode))
