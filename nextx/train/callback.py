"""`NExtCallback`: NExt in the loop of any transformers/TRL trainer training a PEFT LoRA model.

A thin adapter over the trainer-neutral `nextx.jump.JumpEngine`: at every save it records the live
LoRA factors (the history jumps are decided from: nothing is read back from disk) and the world
process zero writes the accumulated base offset beside the checkpoint (`nextx.io.offsets`); at the
checkpoint of step T (and every N steps after, with ``every``) the engine jumps, Ŵ = W_T + α·ΔŴ —
rank 0 decides, every rank applies the identical change — in one of three ways (``apply``):

* ``"offset"`` (default): exact and optimizer-preserving: W₀ ← W₀ + Ŵ − W_T (factored) in the frozen
  base; the LoRA factors and Adam's moments are untouched; later checkpoints carry the offset.
* ``"refactor"``: into the live rank-r LoRA (best rank-r approximation; Adam's moments cleared).
* ``"merge"``: the paper's variant — Ŵ merged into the base, then a fresh LoRA and Adam.

With ``every``, jump k (from 0) goes ``damping``ᵏ × ``ahead``. The learning rate schedule and the
step counter continue, and the checkpoint at T keeps the pre-jump weights, so the run's history
stays the real trajectory. ``trainer.train(resume_from_checkpoint=…)`` restores the offsets into the
base, the history and the jump record, and redoes a jump due at the resume step. At the end of
training, a run whose weights include offsets gets ``OUTPUT/final-adapter``: a plain PEFT adapter of
the true weights (rank r + k) that any loader reads.

    trainer = GRPOTrainer(..., peft_config=lora, callbacks=[NExtCallback(at=100, ahead=50)])
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from nextx.errors import NextxError
from nextx.io.offsets import write_base_history, write_jump_log, write_offsets
from nextx.jump import JumpEngine, JumpPace, PeftLiveModel
from nextx.jump.engine import LOOP_HORIZON
from nextx.jump.export import export_plain_adapter, mark_offset_checkpoint
from nextx.jump.resume import restore
from nextx.jump.warm import save_warm
from nextx.predictors import DEFAULT_METHOD

FINAL_ADAPTER = "final-adapter"


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
        log: a function taking one line per jump (and per candidate); called on rank 0 only.
        final_adapter: at train end, write OUTPUT/final-adapter when the weights include offsets.
        velocity: "total" (extrapolate the whole path) or "trained" (the training's own path, without the
            earlier jumps' offsets: no feedback between frequent jumps; not with apply="merge").
        adaptive: grow or shrink the next jumps by how well training followed the last (`nextx.jump.feedback`).
        verify: compare the mean logged reward of this many steps after a jump with as many before, and
            undo the jump exactly when it fell by more than 2 SE (0: off; set the trainer's logging_steps=1).
        warm: start each predictor fit from the previous jump's (NExt's MLPs), so fewer epochs suffice.
    """

    def __init__(self, at: int, every: int | None = None, method: str = DEFAULT_METHOD, ahead: float | str | None = None,
                 horizon: int = LOOP_HORIZON, hparams: dict | None = None, select: str = "weights", scorer=None,
                 min_se: float = 2.0, apply: str = "offset", cap: float | None = None, coef: float | None = None,
                 damping: float = 1.0, log=None, final_adapter: bool = True, velocity: str = "total",
                 adaptive: bool = False, verify: int = 0, warm: bool = False):
        self.engine = JumpEngine(JumpPace(at, every, damping), method=method, ahead=ahead, horizon=horizon,
                                 hparams=hparams, select=select, scorer=scorer, min_se=min_se, apply=apply, cap=cap,
                                 coef=coef, log=log, velocity=velocity, adaptive=adaptive, verify=verify,
                                 warm=warm)
        self.final_adapter = final_adapter

    @property
    def jumps(self) -> list[dict]:
        return self.engine.jumps

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        check_zero3_saves_adapters(args)
        if state.global_step > 0:  # resumed: the trainer restored W₀, the LoRA and Adam — not our offsets
            live = PeftLiveModel(model, optimizer)
            with live.gathered():
                restore(self.engine, Path(args.output_dir), state.global_step, live, state.max_steps,
                        writer=state.is_world_process_zero)
        return control

    def on_save(self, args, state, control, model=None, optimizer=None, **kwargs):
        live, checkpoint = PeftLiveModel(model, optimizer), Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.engine.offsets and state.is_world_process_zero:  # the checkpoint's true weights include them
            write_offsets(checkpoint, self.engine.offsets, self.engine.made())
            write_base_history(checkpoint, self.engine.additions)
            mark_offset_checkpoint(checkpoint)
        if self.engine.warm and state.is_world_process_zero:  # the fits the next jump starts from (resume)
            save_warm(checkpoint, self.engine.fitted)
        with live.gathered():
            self.engine.observe(state.global_step, live)
            jumped = self.engine.maybe_jump(state.global_step, state.max_steps, live)
        if jumped is not None and state.is_world_process_zero:
            write_jump_log(args.output_dir, self.engine.jumps)
        return control

    def on_log(self, args, state, control, logs=None, model=None, optimizer=None, **kwargs):
        if self.engine.feedback.verify and logs and "reward" in logs and model is not None:
            live = PeftLiveModel(model, optimizer)
            with live.gathered():
                verdict = self.engine.observe_reward(state.global_step, logs["reward"], live)
            if verdict is not None and state.is_world_process_zero:
                write_jump_log(args.output_dir, self.engine.jumps)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self.final_adapter and self.engine.offsets and state.is_world_process_zero:
            export_plain_adapter(Path(args.output_dir), Path(args.output_dir) / FINAL_ADAPTER)
        return control


def check_zero3_saves_adapters(args) -> None:
    """NextxError for DeepSpeed ZeRO-3 without ``stage3_gather_16bit_weights_on_model_save``: its
    checkpoints would hold empty (0-element) LoRA factors, which no reader — nextx included — can use."""
    config = getattr(getattr(args, "hf_deepspeed_config", None), "config", None) or {}
    zero = config.get("zero_optimization") or {}
    if zero.get("stage") == 3 and not zero.get("stage3_gather_16bit_weights_on_model_save", False):
        raise NextxError("DeepSpeed ZeRO-3 without stage3_gather_16bit_weights_on_model_save saves empty LoRA factors: "
                         "the run's checkpoints could not be read back",
                         hint='Set "stage3_gather_16bit_weights_on_model_save": true in zero_optimization.')
