"""`JumpEngine`: decide and apply in-loop jumps for any trainer, and keep their record.

After the checkpoint of a due step T (`JumpPace`), the engine decides the jump from its history with
`nextx.choose.choose_jump` — a given method and steps ahead, the weight-space backtest's choice
(``"auto"``), or, with ``select="reward"`` and a ``scorer``, the candidate that beats staying by
more than ``min_se`` paired standard errors (else no jump) — and moves the live model to

    Ŵ = W_T + α·ΔŴ            (α: the method's unit for ``ahead`` × damping^k training steps)

With ``velocity="trained"`` the history is the training's own path (W₀ + s·B·A, without the offsets
earlier jumps added), so ΔŴ and the trust region measure what training did, not training plus the
previous jump — frequent long jumps then do not feed on themselves.

through `LiveModel` in one of the ways of `nextx.jump.apply`. With ``warm``, each fit starts from the
previous jump's (NExt: its MLPs' weights, so fewer epochs suffice; each checkpoint keeps them,
`nextx.jump.warm`, so a resumed run fits from the same start). Fitting and scoring never shift the
training's random streams, so a run that does not jump continues exactly as without the engine.
"""

from __future__ import annotations

import contextlib
import random
import time

import numpy as np
import torch

from nextx.choose import checkpoint_interval, choose_jump, plain_fitter, warm_fitter
from nextx.errors import NextxError
from nextx.jump.apply import APPLY_MODES, JumpPlan, apply_plan, jump_changes, refactored_factors
from nextx.jump.collective import Collective, current_collective
from nextx.jump.feedback import Feedback
from nextx.jump.history import FactorHistory
from nextx.jump.pace import JumpPace
from nextx.predictors import DEFAULT_METHOD, by_method

LOOP_HORIZON = 3  # NExt's target horizon in the loop, in checkpoints (a jump early in a run has few)
LOOP_METHOD = "trend"  # `nextx train`'s in-loop default: the method of the variant tuned on seeds 100–104
# what a jump extrapolates: the whole path (earlier jumps included: each jump then reads the last one as
# motion), or the training's own path (the LoRA alone; offset jumps leave it untouched: no feedback)
VELOCITIES = ("total", "trained")


@contextlib.contextmanager
def preserved_rng():
    """Restore torch's, Python's and NumPy's global random states on exit, so a run that decides not
    to jump continues exactly as if the engine had not run (paired comparisons rely on it)."""
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        yield
    random.setstate(py_state)
    np.random.set_state(np_state)


class JumpEngine:
    """History, offsets, decision, pace and record of a run's in-loop jumps (arguments: `NExtCallback`)."""

    def __init__(self, pace: JumpPace, *, method: str = DEFAULT_METHOD, ahead: float | str | None = None,
                 horizon: int = LOOP_HORIZON, hparams: dict | None = None, select: str = "weights", scorer=None,
                 min_se: float = 2.0, apply: str = "offset", cap: float | None = None, coef: float | None = None,
                 log=None, history: FactorHistory | None = None, collective: Collective | None = None,
                 velocity: str = "total", adaptive: bool = False, verify: int = 0, verify_z: float = 2.0,
                 warm: bool = False):
        if apply not in APPLY_MODES:
            raise ValueError(f"apply must be one of {', '.join(APPLY_MODES)}, not {apply!r}")
        if velocity not in VELOCITIES or (velocity == "trained" and apply == "merge"):
            raise ValueError(f"velocity must be one of {', '.join(VELOCITIES)} (trained: not with apply='merge'), "
                             f"not {velocity!r}")
        if (adaptive or verify) and apply != "offset":
            raise ValueError("the adaptive pace and verification measure offset jumps: use apply='offset'")
        self.pace, self.method, self.ahead, self.coef, self.apply, self.cap = pace, method, ahead, coef, apply, cap
        self.feedback = Feedback(adaptive=adaptive, verify=verify, z=verify_z)
        self.horizon, self.hparams, self.log = horizon, dict(hparams or {}), log
        self.select, self.scorer, self.min_se = select, scorer, min_se
        self.history = history or FactorHistory(include_offsets=velocity == "total")
        self._collective = collective  # resolved on first use: the process group may start after us
        self.offsets: dict = {}  # module → (L, R) of the accumulated base offset
        self.additions: list[dict] = []  # every change of the base weights, in order (module → (L, R))
        self.jumps: list[dict] = []
        self.warm = warm
        self.fitted: dict = {}  # method → its last fit, which the next one starts from (``warm``)
        self.fitter = warm_fitter(self.fitted) if warm else plain_fitter

    @property
    def collective(self) -> Collective:
        if self._collective is None:
            self._collective = current_collective()
        return self._collective

    def made(self) -> list[dict]:
        """The jumps that moved the weights (not the decisions to stay)."""
        return [j for j in self.jumps if j["jumped"]]

    def observe(self, step: int, live) -> None:
        """Record the live weights at a checkpoint step (the history the next decision reads); the
        adaptive pace measures the last jump against what training did since."""
        self.history.record(step, live, self.offsets)
        rho = self.feedback.measure(step, self.history.specs, self.history.snapshots[-1][1])
        if rho is not None and self.log and self.collective.rank == 0:
            self.log(f"step {step}: training moved ρ = {rho:.2f} of the predicted way since the last jump; next "
                     f"jumps × {self.feedback.scale:g}")

    def observe_reward(self, step: int, reward: float, live) -> bool | None:
        """Record a step's on-policy reward; with verification, undo the last jump exactly when the
        reward after it fell beyond noise. The verdict (True: rolled back), or None before one."""
        pending = self.feedback.pending
        deciding = pending is not None and not pending["verified"]
        fell = self.feedback.verdict(step, reward)
        if not (deciding and pending["verified"]):
            return None
        fell = self.collective.broadcast(fell)  # every rank undoes it, or none
        if fell:
            undo = JumpPlan({}, base={name: (-left, right) for name, (left, right) in pending["changes"].items()})
            apply_plan(live, undo, self.offsets, 0, self.additions)
        if self.log and self.collective.rank == 0:
            record = pending["record"]
            self.log(f"step {step}: jump at step {record['step']} {record['verified']} (reward {record['reward_after']:.3f} "
                     f"after vs {record['reward_before']:.3f} before, SE {record['reward_se']:.3f})")
        return fell

    def maybe_jump(self, step: int, max_steps: int | None, live, seed: int | None = None) -> dict | None:
        """Jump if ``step`` is due (see `JumpPace`); the jump's record, or None when none was due."""
        if not self.pace.due(step, max_steps):
            return None
        return self.jump(step, live, seed=step if seed is None else seed)

    def jump(self, step: int, live, seed: int = 0) -> dict:
        """Decide from the history (rank 0) and apply on every rank; append and return the record."""
        plan = None
        if self.collective.rank == 0:
            try:
                plan = self.decide(step, live)
            except NextxError as err:  # every rank stops with rank 0's reason, none waits forever
                plan = err
        plan = self.collective.broadcast(plan)
        if isinstance(plan, NextxError):
            raise plan
        apply_plan(live, plan, self.offsets, seed, self.additions)
        self.feedback.watch(plan.record, step, plan.base, self.history.snapshots[-1][1])
        self.jumps.append(plan.record)
        if self.log and self.collective.rank == 0:
            self.log(jump_line(plan.record))
        return plan.record

    def decide(self, step: int, live) -> JumpPlan:
        """The jump at ``step`` from the history so far: its record and every module's change."""
        start = time.perf_counter()
        run = self.history.run()
        ahead = self.ahead
        if ahead is None and self.coef is None and self.select == "weights":
            ahead = self.horizon * checkpoint_interval(run.steps)
        scale = self.pace.scale(len(self.made())) * self.feedback.scale
        ahead = ahead * scale if isinstance(ahead, int | float) else ahead
        coef = self.coef * scale if self.coef is not None else None
        with preserved_rng():  # fitting and scoring must not shift the training's random streams
            choice = choose_jump(run, method=self.method, ahead=ahead, coef=coef, horizon=self.horizon,
                                 select=self.select, scorer=self.scorer, min_se=self.min_se, holdout=2,
                                 hparams=by_method({"device": live.device, **self.hparams}), log=self.log, cap=self.cap,
                                 fitter=self.fitter)
        plan, errors = JumpPlan({}), {}
        if choice.jump and self.apply == "refactor":
            plan.factors, errors = refactored_factors(self.history.specs, self.history.snapshots[-1][1],
                                                      choice.extrapolation)
        elif choice.jump:
            plan.base, plan.merge = jump_changes(choice.extrapolation), self.apply == "merge"
        moved = bool(plan.base or plan.factors or plan.merge)  # a prediction of no motion is no jump: the
        reason = choice.reason if moved or not choice.jump else (  # checkpoints after it carry no offset
            f"{choice.reason}; but its prediction is the checkpoint's weights (no module moves)")
        plan.record = {
            "step": step, "jumped": moved, "method": choice.method, "ahead_steps": choice.ahead,
            "coef": choice.extrapolation.coef if choice.jump else 0.0, "criterion": choice.criterion,
            "reason": reason, "apply": self.apply, "seconds": time.perf_counter() - start,
            "scoring_seconds": choice.scoring_seconds, "candidates": choice.candidates,
            "max_rank_error": max(errors.values(), default=0.0),
            "epochs_run": choice.extrapolation.predictor.fit_info.get("epochs_run") if choice.jump else None}
        return plan


def jump_line(record: dict) -> str:
    """The one line a jump (or a decision to stay) is logged with."""
    if not record["jumped"]:
        return f"step {record['step']}: no jump — {record['reason']} ({record['seconds']:.1f} s)"
    how = (f"re-factored, rank-truncation error ≤ {record['max_rank_error']:.2e}" if record["apply"] == "refactor"
           else f"{record['apply']}, exact")
    return (f"step {record['step']}: jump ({record['method']}, {record['ahead_steps']:.0f} steps ahead, "
            f"α = {record['coef']:.3g}) in {record['seconds']:.1f} s ({record['reason']}; {how})")
