"""`LiveModel`: the little a jump needs from the training process; `PeftLiveModel` for a PEFT model.

A new trainer integration implements these five members (or wraps its model in `PeftLiveModel`)
and hands the object to `JumpEngine`; nothing else of the trainer is touched.
"""

from __future__ import annotations

from typing import Protocol

import torch

from nextx.io.run import ModuleSpec

LORA_PREFIX = "base_model.model."
WRAPPERS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")  # FSDP1, activation ckpt, compile


class LiveModel(Protocol):
    """The training process's model and optimizer, as the jump engine uses them."""

    device: str  # where NExt trains unless its settings name a device

    def specs(self) -> dict[str, ModuleSpec]:
        """Every LoRA-trained module: stored shape, rank, scaling, orientation."""

    def factors(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The module's live LoRA factors (A, B)."""

    def add_to_base(self, name: str, left: torch.Tensor, right: torch.Tensor) -> None:
        """W₀ ← W₀ + L·R in the module's frozen base weight (stored orientation)."""

    def write_factors(self, name: str, A: torch.Tensor, B: torch.Tensor) -> None:
        """Replace the module's live LoRA factors."""

    def reset_optimizer(self) -> None:
        """Clear the optimizer's state (Adam's moments)."""


def module_path(name: str) -> str:
    """A module's path in the model as saved: without DDP's ``module.``, FSDP1's and other wrappers'
    prefixes, and PEFT's ``base_model.model.``."""
    for wrapper in WRAPPERS:
        name = name.replace(wrapper, "")
    return name.removeprefix("module.").removeprefix(LORA_PREFIX)


def lora_layers(model) -> dict[str, torch.nn.Module]:
    """The PEFT LoRA layers of a model, by module path (`module_path`)."""
    return {module_path(name): module for name, module in model.named_modules()
            if hasattr(module, "lora_A") and module.active_adapters}


def live_factors(layer) -> tuple[torch.Tensor, torch.Tensor, float, bool]:
    """(A, B, scaling, is_embedding) of a PEFT LoRA layer's active adapter: the parameters themselves
    (``lora_embedding_A/B`` for an Embedding, ``lora_A/B.weight`` otherwise)."""
    adapter = layer.active_adapters[0]
    if adapter in getattr(layer, "lora_embedding_A", {}):
        return layer.lora_embedding_A[adapter], layer.lora_embedding_B[adapter], layer.scaling[adapter], True
    return layer.lora_A[adapter].weight, layer.lora_B[adapter].weight, layer.scaling[adapter], False


@torch.no_grad()
def add_to_base(layer, left: torch.Tensor, right: torch.Tensor) -> None:
    """The layer's frozen base weight W₀ ← W₀ + L·R (formed in float64, added in the weight's dtype;
    a sharded FSDP2 weight gets its own shard of it; a ZeRO-3 partitioned one is gathered, changed on
    rank 0 and partitioned again — every rank must call this)."""
    weight = layer.base_layer.weight
    if hasattr(weight, "ds_id"):
        import deepspeed
        import torch.distributed as dist

        with deepspeed.zero.GatheredParameters([weight], modifier_rank=0):
            if dist.get_rank() == 0:
                weight.add_((left.double() @ right.double()).to(device=weight.device, dtype=weight.dtype))
        return
    weight.add_(like(weight, left.double() @ right.double()))


def like(param: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """``full`` in ``param``'s dtype and device — and, for a DTensor (FSDP2), sharded as it is."""
    if _is_dtensor(param):
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(full.to(device=param.device, dtype=param.dtype), param.device_mesh, param.placements)
    return full.to(device=param.device, dtype=param.dtype)


def whole(param: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a parameter: gathered from its shards for a DTensor (FSDP2), DeepSpeed's fp32
    master copy for a ZeRO-1/2/3 trainable one (what the next step updates; a collective for ZeRO-3)."""
    if _is_zero(param):
        from deepspeed.utils import safe_get_full_fp32_param

        return safe_get_full_fp32_param(param)
    return param.full_tensor() if _is_dtensor(param) else param


def _is_zero(param) -> bool:
    return hasattr(param, "ds_id") or hasattr(param, "_hp_mapping")


@torch.no_grad()
def set_zero_param(param: torch.Tensor, value: torch.Tensor) -> None:
    """A DeepSpeed-managed parameter ← value: its fp32 master copy and the model's copy (gathered,
    changed on rank 0 and partitioned again under ZeRO-3), so the next step starts from it."""
    import deepspeed
    from deepspeed.utils import safe_set_full_fp32_param

    safe_set_full_fp32_param(param, value.to(torch.float32))
    with deepspeed.zero.GatheredParameters([param], modifier_rank=0) if hasattr(param, "ds_id") else _nothing():
        param.copy_(value.to(device=param.device, dtype=param.dtype))


def zero_moments(params) -> bool:
    """Adam's moments of DeepSpeed-managed ``params`` ← 0 (True if they were DeepSpeed's)."""
    params = [p for p in params if _is_zero(p)]
    if not params:
        return False
    from deepspeed.utils import safe_set_full_optimizer_state

    for param in params:
        for key in ("exp_avg", "exp_avg_sq"):
            safe_set_full_optimizer_state(param, torch.zeros(_shape(param)), key)
    return True


def _shape(param) -> tuple:
    return tuple(getattr(param, "ds_shape", None) or param.shape)


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def _is_dtensor(tensor) -> bool:
    return type(tensor).__name__ == "DTensor"


def reset_adam_moments(optimizer) -> None:
    """Clear the optimizer state (Adam's moments); works on accelerate's wrapped optimizer too."""
    inner = getattr(optimizer, "optimizer", optimizer)
    if inner is not None:
        inner.state.clear()


class PeftLiveModel:
    """`LiveModel` over a PEFT model (any trainer) and its optimizer."""

    def __init__(self, model, optimizer=None):
        self.model, self.optimizer = model, optimizer
        self.layers = lora_layers(model)
        parameter = next(model.parameters(), None)
        self.device = str(parameter.device) if parameter is not None else "cpu"

    def specs(self) -> dict[str, ModuleSpec]:
        specs = {}
        for name, layer in self.layers.items():
            A, _, scaling, embedding = live_factors(layer)
            transposed = embedding or bool(getattr(layer, "fan_in_fan_out", False))
            specs[name] = ModuleSpec(name, _shape(layer.base_layer.weight), _shape(A)[0], float(scaling),
                                     transposed=transposed, embedding=embedding)
        return specs

    def factors(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        A, B, _, _ = live_factors(self.layers[name])
        return whole(A), whole(B)

    def add_to_base(self, name: str, left: torch.Tensor, right: torch.Tensor) -> None:
        add_to_base(self.layers[name], left, right)

    @torch.no_grad()
    def write_factors(self, name: str, A: torch.Tensor, B: torch.Tensor) -> None:
        live_A, live_B, _, _ = live_factors(self.layers[name])
        for param, value in ((live_A, A), (live_B, B)):
            if _is_zero(param):
                set_zero_param(param, value)
            else:
                param.copy_(like(param, value))

    def gathered(self):
        """A context in which the model's parameters are whole: FSDP1's ``summon_full_params`` with
        writeback (every rank must enter it); nothing to do otherwise (DDP, FSDP2's DTensors)."""
        import contextlib

        from torch.distributed.fsdp import FullyShardedDataParallel

        if any(isinstance(m, FullyShardedDataParallel) for m in self.model.modules()):
            return FullyShardedDataParallel.summon_full_params(self.model, writeback=True)
        return contextlib.nullcontext()

    def reset_optimizer(self) -> None:
        lora = [p for layer in self.layers.values() for p in live_factors(layer)[:2]]
        if not zero_moments(lora):  # DeepSpeed keeps them partitioned in its own optimizer
            reset_adam_moments(self.optimizer)
