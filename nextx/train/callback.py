"""`NExtCallback`: NExt in the loop of any transformers/TRL trainer training a PEFT LoRA model.

A thin adapter over the trainer-neutral `nextx.jump.JumpEngine`: at every save it records the live
LoRA factors (the history jumps are decided from: nothing is read back from disk) and writes the
accumulated base offset beside the checkpoint (`nextx.io.offsets`); at the checkpoint of step T
(and every N steps after, with ``every``) it lets the engine jump, Ŵ = W_T + α·ΔŴ, in one of three
ways (``apply``):

* ``"offset"`` (default): exact and optimizer-preserving: W₀ ← W₀ + Ŵ − W_T (factored) in the frozen
  base; the LoRA factors and Adam's moments are untouched; later checkpoints carry the offset.
* ``"refactor"``: into the live rank-r LoRA (best rank-r approximation; Adam's moments cleared).
* ``"merge"``: the paper's variant — Ŵ merged into the base, then a fresh LoRA and Adam.

With ``every``, jump k (from 0) goes ``damping``ᵏ × ``ahead``. The learning rate schedule and the
step counter continue, and the checkpoint at T keeps the pre-jump weights, so the run's history
stays the real trajectory.

    trainer = GRPOTrainer(..., peft_config=lora, callbacks=[NExtCallback(at=100, ahead=50)])
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from nextx.io.offsets import write_offsets
from nextx.jump import JumpEngine, JumpPace, PeftLiveModel
from nextx.jump.engine import LOOP_HORIZON
from nextx.predictors import DEFAULT_METHOD


class NExtCallback(TrainerCallback):
    """Jump the live LoRA weights right after the checkpoint at step ``at`` (and every ``every`` steps).

    Args:
        at: the training step (a checkpoint step) of the first jump.
        every: jump again every this many steps after ``at`` (None: once).
        method: next | relex | linear | trend | rre | auto (the backtest's or, with reward selection,
            any candidate).
        ahead: training steps past the checkpoint to jump, or "auto" (weight-space calibration);
            None: one horizon (``horizon`` checkpoint intervals).
        horizon: NExt's target horizon, in checkpoints.
        hparams: the methods' settings, flat (e.g. {"lr": 3e-4, "window": 6}); each method takes the
            ones it declares (`nextx.predictors.Param`). NExt trains on the trainer's device unless
            ``device`` is given.
        select: "weights" (as given / backtest) or "reward" (needs ``scorer``).
        scorer: an evaluation hook (`nextx.scoring.Scorer`), e.g. `nextx.train.scorer.TaskScorer`.
        min_se: a reward-selected jump must beat staying by more than this many paired SE.
        apply: "offset" (the default), "refactor" or "merge" (see the module docstring).
        damping: with ``every``, the k-th jump (from 0) goes damping**k × ``ahead`` (or × ``coef``).
        cap: trust region, per module ‖Ŵ − W_T‖ ≤ cap · ‖W_T − W_{T−1}‖ (None: no cap).
        coef: the method's own α instead of ``ahead`` (advanced).
        log: a function taking one line per jump (and per candidate).
    """

    def __init__(self, at: int, every: int | None = None, method: str = DEFAULT_METHOD, ahead: float | str | None = None,
                 horizon: int = LOOP_HORIZON, hparams: dict | None = None, select: str = "weights", scorer=None,
                 min_se: float = 2.0, apply: str = "offset", cap: float | None = None, coef: float | None = None,
                 damping: float = 1.0, log=None):
        self.engine = JumpEngine(JumpPace(at, every, damping), method=method, ahead=ahead, horizon=horizon,
                                 hparams=hparams, select=select, scorer=scorer, min_se=min_se, apply=apply, cap=cap,
                                 coef=coef, log=log)

    @property
    def jumps(self) -> list[dict]:
        return self.engine.jumps

    def on_save(self, args, state, control, model=None, optimizer=None, **kwargs):
        live = PeftLiveModel(model, optimizer)
        if self.engine.offsets:  # this checkpoint's true weights include the jumps made so far
            write_offsets(Path(args.output_dir) / f"checkpoint-{state.global_step}", self.engine.offsets,
                          self.engine.made())
        self.engine.observe(state.global_step, live)
        self.engine.maybe_jump(state.global_step, state.max_steps, live)
        return control
