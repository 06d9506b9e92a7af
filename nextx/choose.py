"""Choose a jump: which method, how many steps ahead — or no jump at all. One call for the CLI and
the in-loop callback.

* ``select="weights"`` (the cheap diagnostic): with a given method and ``ahead`` (steps), fit and
  jump; with ``method="auto"`` or ``ahead="auto"``, backtest on held-out checkpoints and take the
  method with the lowest weight-space error and its calibrated step count. A calibrated jump shorter
  than one checkpoint interval is "no useful jump found" (no jump), not an almost-unchanged model.
* ``select="reward"``: build candidates (methods × steps ahead, by default ¼, ½, 1, 1½, 2 horizons),
  score each and "stay" (the last checkpoint) with the same scorer on the same items, and jump to the
  best candidate only if it beats stay by more than ``min_se`` paired standard errors. Otherwise no
  jump: weight-space error does not predict task reward, so nothing worse than staying is handed out.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from nextx.backtesting import DEFAULT_METHODS, auto_choice, backtest
from nextx.errors import PredictorError
from nextx.extrapolation import Extrapolation, extrapolate
from nextx.fitting import fit, method_trajectories
from nextx.io.run import Run
from nextx.predictors import DEFAULT_METHOD, REGISTRY, Predictor, make_predictor, with_seed
from nextx.scoring import Score, Scorer, paired_difference
from nextx.trajectory import DEFAULT_HORIZON, Trajectories

CANDIDATE_METHODS = tuple(name for name, cls in REGISTRY.items() if cls.candidate)
HORIZON_FRACTIONS = (0.25, 0.5, 1.0, 1.5, 2.0)

Fitter = Callable[[Run, str, int, dict, "Trajectories | None"], tuple[Predictor, "Trajectories | None"]]


def plain_fitter(run: Run, method: str, horizon: int, hparams: dict, traj: Trajectories | None,
                 init: Predictor | None = None):
    """Fit ``method`` (computing the trajectories if it needs them and none are given), from ``init``."""
    if traj is None:
        traj = method_trajectories(run, method, horizon, hparams)
    return fit(run, method, horizon=horizon, traj=traj, init=init, **hparams), traj


def warm_fitter(previous: dict[str, Predictor]) -> Fitter:
    """A fitter that starts each method from its last fit in ``previous`` (NExt: its MLPs' weights)
    and keeps the new fit there for the next call (the loop's frequent jumps)."""
    def fitter(run: Run, method: str, horizon: int, hparams: dict, traj: Trajectories | None):
        predictor, traj = plain_fitter(run, method, horizon, hparams, traj, init=previous.get(method))
        previous[method] = predictor
        return predictor, traj
    return fitter


@dataclass
class JumpChoice:
    """The decision: ``extrapolation`` is the chosen jump (None when ``jump`` is False)."""

    jump: bool
    criterion: str  # weights | reward | given
    reason: str
    extrapolation: Extrapolation | None = None
    candidates: list[dict] = field(default_factory=list)  # reward selection: every candidate scored
    backtest: dict | None = None
    scoring_seconds: float = 0.0

    @property
    def method(self) -> str | None:
        return self.extrapolation.predictor.name if self.extrapolation else None

    @property
    def ahead(self) -> float:
        return self.extrapolation.ahead if self.extrapolation else 0.0

    def to_dict(self) -> dict:
        return {"jump": self.jump, "criterion": self.criterion, "reason": self.reason, "method": self.method,
                "ahead_steps": self.ahead, "coef": self.extrapolation.coef if self.extrapolation else 0.0,
                "candidates": self.candidates, "scoring_seconds": self.scoring_seconds,
                **({"backtest": self.backtest} if self.backtest else {})}


@contextlib.contextmanager
def _no_progress(run, methods, hparams):
    yield {}


def checkpoint_interval(steps: Sequence[int]) -> float:
    return float(steps[-1] - steps[-2]) if len(steps) > 1 else float(steps[-1])


def ahead_grid(steps: Sequence[int], horizon: int, fractions: Sequence[float] = HORIZON_FRACTIONS) -> list[float]:
    """Steps ahead to try: fractions of one horizon (``horizon`` checkpoint intervals)."""
    return [f * horizon * checkpoint_interval(steps) for f in fractions]


def choose_jump(
    run: Run,
    *,
    method: str = DEFAULT_METHOD,
    ahead: float | str | None = None,
    to_step: float | None = None,
    coef: float | None = None,
    horizon: int = DEFAULT_HORIZON,
    select: str = "weights",
    scorer: Scorer | None = None,
    methods: Sequence[str] | None = None,
    aheads: Sequence[float] | None = None,
    min_se: float = 2.0,
    holdout: int = 2,
    seed: int = 0,
    hparams: dict[str, dict] | None = None,
    fitter: Fitter = plain_fitter,
    log: Callable[[str], None] | None = None,
    cap: float | None = None,
    backtest_progress: Callable[..., contextlib.AbstractContextManager[dict]] | None = None,
) -> JumpChoice:
    """Decide the jump for ``run`` (see the module docstring). ``backtest_progress(run, methods,
    hparams)``: a context giving the weight-space backtest its progress callbacks (the CLI's bars)."""
    hparams = with_seed(hparams or {}, seed)
    if select == "reward":
        if scorer is None:
            raise PredictorError("--select reward needs an evaluation", hint="Pass --eval-task, --eval or --eval-cmd.")
        if to_step is not None:
            ahead = to_step - run.steps[-1]
        fixed = [float(ahead)] if ahead not in (None, "auto") else None
        chosen_methods = list(methods or (CANDIDATE_METHODS if method == "auto" else (method,)))
        return select_by_reward(run, scorer, chosen_methods, list(aheads or fixed or ahead_grid(run.steps, horizon)),
                                horizon=horizon, min_se=min_se, hparams=hparams, fitter=fitter, log=log, cap=cap)
    if select != "weights":
        raise PredictorError(f"unknown selection {select!r}", hint="Choose weights or reward.")
    report = None
    if method == "auto" or ahead == "auto":
        with (backtest_progress or _no_progress)(run, DEFAULT_METHODS, hparams) as progress:
            report = backtest(run, DEFAULT_METHODS, holdout=holdout, horizon=horizon, seed=seed, hparams=hparams, **progress)
        method, auto_coef = auto_choice(report, None if method == "auto" else method)
        if ahead == "auto":
            ahead = make_predictor(method, horizon=horizon).ahead_for_coef(auto_coef, run.steps)
            if ahead < checkpoint_interval(run.steps):
                return JumpChoice(False, "weights", f"no useful jump found: the calibrated {method} jump is "
                                  f"{ahead:.1f} steps ahead, less than one checkpoint interval "
                                  f"({checkpoint_interval(run.steps):g} steps)", backtest=report.to_dict())
    predictor, traj = fitter(run, method, horizon, hparams.get(method, {}), None)
    jump = extrapolate(run, predictor, ahead=ahead, to_step=to_step, coef=coef, traj=traj, cap=cap)
    if report is not None:
        jump.provenance["backtest"] = report.to_dict()
        reason = f"chosen by weight-space backtest error, not by task reward ({method} best)"
    else:
        reason = "given"
    return JumpChoice(True, "weights" if report else "given", reason, jump,
                      backtest=report.to_dict() if report else None)


def select_by_reward(run: Run, scorer: Scorer, methods: Sequence[str], aheads: Sequence[float], *, horizon: int,
                     min_se: float = 2.0, hparams: dict[str, dict] | None = None, fitter: Fitter = plain_fitter,
                     log: Callable[[str], None] | None = None, cap: float | None = None) -> JumpChoice:
    """Score stay and every (method, steps ahead) candidate; jump to the best one only if it beats stay
    by more than ``min_se`` paired standard errors. One trajectory computation and one fit per method."""
    hparams = hparams or {}
    start = time.perf_counter()
    stay = extrapolate(run, make_predictor("stay", horizon=horizon).fit(None, run.steps), ahead=0.0)
    stay_score = scorer.score(stay)
    rows = [_row("stay", 0.0, 0.0, stay_score, stay_score)]
    best: tuple[float, Extrapolation] | None = None
    traj = None
    for method in methods:
        predictor, traj = fitter(run, method, horizon, hparams.get(method, {}), traj)
        for ahead in aheads:
            candidate = extrapolate(run, predictor, ahead=ahead, traj=traj, cap=cap)
            score = scorer.score(candidate)
            row = _row(method, ahead, candidate.coef, score, stay_score, min_se)
            rows.append(row)
            if log:
                log(f"  {method:>7} {ahead:7.1f} steps ahead: {score.mean:.4f} ({row['delta']:+.4f} vs stay"
                    + (f" ± {row['se']:.4f})" if row["se"] is not None else ")"))
            if row["beats_stay"] and (best is None or score.mean > best[0]):
                best = (score.mean, candidate)
    seconds = time.perf_counter() - start
    if best is None:
        return JumpChoice(False, "reward", f"no jump beats staying on this evaluation ({scorer.name})",
                          candidates=rows, scoring_seconds=seconds)
    chosen = best[1]
    for row in rows:
        row["chosen"] = row["method"] == chosen.predictor.name and row["ahead_steps"] == chosen.ahead
    chosen.provenance["selection"] = {"criterion": "reward", "scorer": scorer.name, "min_se": min_se,
                                      "candidates": rows}
    return JumpChoice(True, "reward", f"beats staying by more than {min_se:g} paired SE on {scorer.name}", chosen,
                      candidates=rows, scoring_seconds=seconds)


def _row(method: str, ahead: float, coef: float, score: Score, stay: Score, min_se: float = 2.0) -> dict:
    delta, se = paired_difference(score, stay)
    beats = method != "stay" and (delta > min_se * se if se is not None else delta > 0)
    return {"method": method, "ahead_steps": ahead, "coef": coef, "score": score.mean, "delta": delta, "se": se,
            "beats_stay": beats, "chosen": False, "n": len(score.per_item) if score.per_item else None}
