"""`NExtCallback`: NExt in the loop of any transformers/TRL trainer training a PEFT LoRA model.

At the checkpoint of step T (and every N steps after, with ``every``), the callback reads the run's
checkpoints so far (``args.output_dir``, TRL layout), decides the jump with `nextx.choose.choose_jump`
— a given method and steps ahead, the weight-space backtest's choice (``"auto"``), or, with
``select="reward"`` and a ``scorer``, the candidate that beats staying on the scorer's items by more
than ``min_se`` paired standard errors (else no jump) — and writes

    Ŵ = W_T + α·ΔŴ            (α: the method's unit for ``ahead`` training steps)

into the model, in one of three ways (``apply``):

* ``"refactor"``: into the live LoRA weights. The live adapter keeps its rank r, so
  Ŵ − W₀ (rank r+1 for NExt) is replaced by its best rank-r approximation (relative error logged in
  ``self.jumps``); Adam's moments of the LoRA parameters are cleared (they describe the old factors).
* ``"offset"`` (default): exact and optimizer-preserving: the change Ŵ − W_T is added to the frozen base
  weights (W₀ ← W₀ + Ŵ − W_T, factored), the LoRA factors and Adam's moments are untouched. The
  accumulated offset is written beside every later checkpoint (`nextx.io.offsets`), where the reader
  applies it.
* ``"merge"``: the paper's variant — Ŵ is merged into the frozen base (the offset above plus the
  live LoRA s·B·A), then the LoRA restarts fresh (PEFT's init: B = 0, A Kaiming-uniform from a
  generator seeded by the step) and Adam's moments are cleared. Persisted like ``"offset"``.

With ``every``, later jumps can be damped: jump k (from 0) goes ``damping``ᵏ × ``ahead``.
Either way the learning rate schedule and the step counter continue, and the checkpoint at T keeps
the pre-jump weights, so the run's history stays the real trajectory.

    trainer = GRPOTrainer(..., peft_config=lora, callbacks=[NExtCallback(at=100, ahead=50)])
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from nextx.choose import checkpoint_interval, choose_jump
from nextx.io.offsets import accumulate, write_offsets
from nextx.io.run import load_run
from nextx.lowrank import FactoredUpdate, compact, factors_of, truncate
from nextx.predictors import DEFAULT_METHOD, by_method

LORA_PREFIX = "base_model.model."
APPLY_MODES = ("offset", "refactor", "merge")


class NExtCallback(TrainerCallback):
    """Jump the live LoRA weights right after the checkpoint at step ``at`` (and every ``every`` steps).

    Args:
        at: the training step (a checkpoint step) of the first jump.
        every: jump again every this many steps after ``at`` (None: once).
        method: next | relex | linear | auto (the backtest's or, with reward selection, any candidate).
        ahead: training steps past the checkpoint to jump, or "auto" (weight-space calibration);
            None: one horizon (``horizon`` checkpoint intervals).
        horizon: NExt's target horizon, in checkpoints.
        hparams: the methods' settings, flat (e.g. {"lr": 3e-4, "window": 6}); each method takes the
            ones it declares (`nextx.predictors.Param`). NExt trains on the trainer's device unless
            ``device`` is given.
        select: "weights" (as given / backtest) or "reward" (needs ``scorer``).
        scorer: an evaluation hook (`nextx.scoring.Scorer`), e.g. `nextx.train.scorer.TaskScorer`.
        min_se: a reward-selected jump must beat staying by more than this many paired SE.
        apply: "offset" (into the frozen base, exact, Adam kept; the default), "refactor" (into the rank-r
            LoRA, Adam reset) or "merge" (the LoRA merged into the base too, then a fresh LoRA and Adam).
        damping: with ``every``, the k-th jump (from 0) goes damping**k × ``ahead`` (or × ``coef``).
        cap: trust region, per module ‖Ŵ − W_T‖ ≤ cap · ‖W_T − W_{T−1}‖ (None: no cap).
        coef: the method's own α instead of ``ahead`` (advanced).
        log: a function taking one line per jump (and per candidate).
    """

    def __init__(self, at: int, every: int | None = None, method: str = DEFAULT_METHOD, ahead: float | str | None = None,
                 horizon: int = 3, hparams: dict | None = None, select: str = "weights", scorer=None,
                 min_se: float = 2.0, apply: str = "offset", cap: float | None = None, coef: float | None = None,
                 damping: float = 1.0, log=None):
        if apply not in APPLY_MODES:
            raise ValueError(f"apply must be one of {', '.join(APPLY_MODES)}, not {apply!r}")
        if not 0 < damping <= 1:
            raise ValueError(f"damping must be in (0, 1], not {damping!r}")
        self.damping = damping
        self.at, self.every, self.method, self.ahead, self.coef = at, every, method, ahead, coef
        self.apply, self.cap, self.offsets = apply, cap, {}  # module → (L, R) of the accumulated base offset
        self.horizon, self.hparams, self.log = horizon, dict(hparams or {}), log
        self.select, self.scorer, self.min_se = select, scorer, min_se
        self.jumps: list[dict] = []

    def due(self, step: int) -> bool:
        """True at T, and at T + k·every."""
        if step == self.at:
            return True
        return bool(self.every) and step > self.at and (step - self.at) % self.every == 0

    def on_save(self, args, state, control, model=None, optimizer=None, **kwargs):
        if self.offsets:  # this checkpoint's true weights include the jumps made so far
            write_offsets(Path(args.output_dir) / f"checkpoint-{state.global_step}", self.offsets,
                          [j for j in self.jumps if j["jumped"]])
        if not self.due(state.global_step) or state.global_step >= state.max_steps:  # nothing trains after the last
            return control
        start = time.perf_counter()
        run = load_run(args.output_dir, layout="trl")
        ahead = self.ahead
        if ahead is None and self.coef is None and self.select == "weights":
            ahead = self.horizon * checkpoint_interval(run.steps)
        damp = self.damping ** sum(j["jumped"] for j in self.jumps)
        ahead = ahead * damp if isinstance(ahead, int | float) else ahead
        coef = self.coef * damp if self.coef is not None else None
        with preserved_rng():  # fitting and scoring must not shift the training's random streams
            choice = choose_jump(run, method=self.method, ahead=ahead, coef=coef, horizon=self.horizon,
                                 select=self.select, scorer=self.scorer, min_se=self.min_se, holdout=2,
                                 hparams=by_method({"device": _device_of(model), **self.hparams}), log=self.log, cap=self.cap)
        errors = {}
        if choice.jump and self.apply in ("offset", "merge"):
            add_to_base_weights(model, choice.extrapolation, self.offsets)
            if self.apply == "merge":
                merge_and_restart_lora(model, self.offsets, seed=state.global_step)
                reset_adam_moments(optimizer)
        elif choice.jump:
            errors = load_into_live_model(model, choice.extrapolation)
            reset_adam_moments(optimizer)
        jump = {"step": state.global_step, "jumped": choice.jump, "method": choice.method, "ahead_steps": choice.ahead,
                "coef": choice.extrapolation.coef if choice.jump else 0.0, "criterion": choice.criterion,
                "reason": choice.reason, "apply": self.apply, "seconds": time.perf_counter() - start,
                "scoring_seconds": choice.scoring_seconds, "candidates": choice.candidates,
                "max_rank_error": max(errors.values(), default=0.0),
                "epochs_run": choice.extrapolation.predictor.fit_info.get("epochs_run") if choice.jump else None}
        self.jumps.append(jump)
        if self.log:
            if choice.jump:
                how = (f"re-factored, rank-truncation error ≤ {jump['max_rank_error']:.2e}" if self.apply == "refactor"
                       else f"{self.apply}, exact")
                self.log(f"step {jump['step']}: jump ({choice.method}, {choice.ahead:.0f} steps ahead, "
                         f"α = {jump['coef']:.3g}) in {jump['seconds']:.1f} s ({choice.reason}; {how})")
            else:
                self.log(f"step {jump['step']}: no jump — {choice.reason} ({jump['seconds']:.1f} s)")
        return control


def _device_of(model) -> str:
    """The trainer's device (NExt trains its MLPs there unless hparams name one)."""
    parameter = next(model.parameters(), None) if model is not None else None
    return str(parameter.device) if parameter is not None else "cpu"


@contextlib.contextmanager
def preserved_rng():
    """Restore torch's, Python's and NumPy's global random states on exit, so a run that decides not
    to jump continues exactly as if the callback had not run (paired comparisons rely on it)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        yield
    random.setstate(py_state)
    np.random.set_state(np_state)


def fold(offsets: dict, name: str, left: torch.Tensor, right: torch.Tensor) -> None:
    """Add L·R to a module's accumulated offset and keep it at its numerical rank: each jump's factors
    repeat the earlier offsets (they are part of every later checkpoint), so plain concatenation would
    grow the rank several-fold per jump."""
    accumulate(offsets, name, left, right)
    offsets[name] = tuple(f.to(torch.float32) for f in compact(*offsets[name]))


def lora_layers(model) -> dict[str, torch.nn.Module]:
    """The PEFT LoRA layers of a model, by module path (without PEFT's base_model.model. prefix)."""
    return {name.removeprefix(LORA_PREFIX): module for name, module in model.named_modules()
            if hasattr(module, "lora_A") and module.active_adapters}


def live_factors(layer) -> tuple[torch.Tensor, torch.Tensor, float, bool]:
    """(A, B, scaling, is_embedding) of a PEFT LoRA layer's active adapter: the parameters themselves
    (``lora_embedding_A/B`` for an Embedding, ``lora_A/B.weight`` otherwise)."""
    adapter = layer.active_adapters[0]
    embedding = adapter in getattr(layer, "lora_embedding_A", {})
    if embedding:
        return layer.lora_embedding_A[adapter], layer.lora_embedding_B[adapter], layer.scaling[adapter], True
    return layer.lora_A[adapter].weight, layer.lora_B[adapter].weight, layer.scaling[adapter], False


@torch.no_grad()
def add_to_base(layer, left: torch.Tensor, right: torch.Tensor) -> None:
    """The layer's frozen base weight W₀ ← W₀ + L·R (formed in float64, added in the weight's dtype)."""
    weight = layer.base_layer.weight
    weight.add_((left.double() @ right.double()).to(device=weight.device, dtype=weight.dtype))


@torch.no_grad()
def load_into_live_model(model, extrapolation) -> dict[str, float]:
    """Write Ŵ − W₀ into the live LoRA factors (best rank-r approximation); return relative errors."""
    layers = lora_layers(model)
    errors = {}
    for name, stack, update in extrapolation.module_updates():
        layer = layers[name]
        spec = extrapolation.run.modules[name]
        lora_A, lora_B, scaling, _ = live_factors(layer)
        rank = lora_A.shape[0]
        left, right = factors_of(stack, update)
        if spec.transposed:
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


@torch.no_grad()
def add_to_base_weights(model, extrapolation, offsets: dict) -> None:
    """W₀ ← W₀ + (Ŵ − W_T) in every trained module's frozen base weight (exact, in the stored
    orientation); the change's factors are accumulated into ``offsets``. LoRA factors and the
    optimizer are untouched, so the live model moves from W_T to Ŵ and training continues from there."""
    layers = lora_layers(model)
    last = len(extrapolation.run.steps) - 1
    for name, stack, update in extrapolation.module_updates():
        left, right = factors_of(stack, update - FactoredUpdate({last: 1.0}))  # Ŵ − W_T
        if left.shape[1] == 0:
            continue
        add_to_base(layers[name], left, right)
        fold(offsets, name, left, right)


@torch.no_grad()
def merge_and_restart_lora(model, offsets: dict, seed: int) -> None:
    """W₀ ← W₀ + s·B·A in every LoRA layer (accumulated into ``offsets``, in the weight's orientation),
    then a fresh LoRA: B = 0, A Kaiming-uniform as PEFT initialises it, from a generator seeded by
    ``seed`` (the global random streams are left alone)."""
    generator = torch.Generator().manual_seed(seed)
    for name, layer in lora_layers(model).items():
        lora_A, lora_B, scaling, embedding = live_factors(layer)
        if embedding or getattr(layer, "fan_in_fan_out", False):  # the weight holds (s·B·A)ᵀ
            left, right = lora_A.double().T, scaling * lora_B.double().T
        else:
            left, right = scaling * lora_B.double(), lora_A.double()
        add_to_base(layer, left, right)
        fold(offsets, name, left, right)
        fresh = torch.empty(lora_A.shape, dtype=torch.float32)
        torch.nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=generator)
        lora_A.copy_(fresh.to(lora_A.dtype))
        lora_B.zero_()


def reset_adam_moments(optimizer) -> None:
    """Clear the optimizer state (Adam's moments); works on accelerate's wrapped optimizer too."""
    inner = getattr(optimizer, "optimizer", optimizer)
    if inner is not None:
        inner.state.clear()
