"""`NExtCallback`: NExt in the loop of any transformers/TRL trainer training a PEFT LoRA model.

At the checkpoint of step T (and every N steps after, with ``every``), the callback fits ``method``
on the run's checkpoints so far (``args.output_dir``, TRL layout), extrapolates

    Ŵ = W_T + α·ΔŴ

and writes Ŵ into the live LoRA weights. The live adapter keeps its rank r, so Ŵ − W₀ (rank r+1 for
NExt) is replaced by its best rank-r approximation; the relative error is logged in ``self.jumps``.
Adam's moments of the LoRA parameters are cleared (they describe the old factors); the learning
rate schedule and the step counter continue. The checkpoint at T keeps the pre-jump weights, so the
run's history stays the real trajectory.

    trainer = GRPOTrainer(..., peft_config=lora, callbacks=[NExtCallback(at=100, coef=1.0)])
"""

from __future__ import annotations

import time

import torch
from transformers import TrainerCallback

from nextx.backtest import auto_choice, backtest
from nextx.extrapolate import extrapolate
from nextx.fit import fit
from nextx.io.run import load_run
from nextx.lowrank import factors_of, truncate

LORA_PREFIX = "base_model.model."


class NExtCallback(TrainerCallback):
    """Jump the live LoRA weights to NExt's prediction right after the checkpoint at step ``at``."""

    def __init__(self, at: int, every: int | None = None, method: str = "next", coef: float | str = 1.0,
                 horizon: int = 3, hparams: dict | None = None, log=None):
        self.at, self.every, self.method, self.coef = at, every, method, coef
        self.horizon, self.hparams, self.log = horizon, dict(hparams or {}), log
        self.jumps: list[dict] = []

    def due(self, step: int) -> bool:
        """True at T, and at T + k·every."""
        if step == self.at:
            return True
        return bool(self.every) and step > self.at and (step - self.at) % self.every == 0

    def on_save(self, args, state, control, model=None, optimizer=None, **kwargs):
        if not self.due(state.global_step):
            return control
        start = time.perf_counter()
        run = load_run(args.output_dir, layout="trl")
        method, coef = self.method, self.coef
        if method == "auto" or coef == "auto":
            report = backtest(run, holdout=2, horizon=self.horizon, hparams={"next": self.hparams})
            method, auto_coef = auto_choice(report, None if method == "auto" else method)
            coef = auto_coef if coef == "auto" else coef
        predictor = fit(run, method, horizon=self.horizon, **(self.hparams if method == "next" else {}))
        errors = load_into_live_model(model, extrapolate(run, predictor, coef=float(coef)))
        reset_adam_moments(optimizer)
        jump = {"step": state.global_step, "method": method, "coef": float(coef), "seconds": time.perf_counter() - start,
                "max_rank_error": max(errors.values(), default=0.0)}
        self.jumps.append(jump)
        if self.log:
            self.log(f"step {jump['step']}: NExt jump ({method}, α = {jump['coef']:.3g}) in {jump['seconds']:.1f} s, "
                     f"rank-truncation error ≤ {jump['max_rank_error']:.2e}")
        return control


def _lora_layers(model) -> dict[str, torch.nn.Module]:
    return {name.removeprefix(LORA_PREFIX): module for name, module in model.named_modules()
            if hasattr(module, "lora_A") and module.active_adapters}


@torch.no_grad()
def load_into_live_model(model, extrapolation) -> dict[str, float]:
    """Write Ŵ − W₀ into the live LoRA factors (best rank-r approximation); return relative errors."""
    layers = _lora_layers(model)
    fan_in_fan_out = extrapolation.run.lora.fan_in_fan_out
    errors = {}
    for name, stack, update in extrapolation.module_updates():
        layer = layers[name]
        adapter = layer.active_adapters[0]
        lora_A, lora_B = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
        rank, scaling = lora_A.shape[0], layer.scaling[adapter]
        left, right = factors_of(stack, update)
        if fan_in_fan_out:
            left, right = right.T, left.T
        left, right, errors[name] = truncate(left, right, rank)
        # keep A's rows at the live A's scale, put the magnitude in B
        target = float(lora_A.double().norm()) / max(rank, 1) ** 0.5 or 1.0
        norms = right.norm(dim=1).clamp_min(1e-30)
        right = right * (target / norms).unsqueeze(1)
        left = left * (norms / target).unsqueeze(0)
        new_A = torch.zeros_like(lora_A, dtype=torch.float64)
        new_B = torch.zeros_like(lora_B, dtype=torch.float64)
        new_A[: right.shape[0]] = right
        new_B[:, : left.shape[1]] = left / scaling
        lora_A.copy_(new_A.to(lora_A.dtype))
        lora_B.copy_(new_B.to(lora_B.dtype))
    return errors


def reset_adam_moments(optimizer) -> None:
    """Clear the optimizer state (Adam's moments); works on accelerate's wrapped optimizer too."""
    inner = getattr(optimizer, "optimizer", optimizer)
    if inner is not None:
        inner.state.clear()
