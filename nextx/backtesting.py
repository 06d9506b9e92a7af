"""Backtest: fit every method on all but the last K checkpoints and score its predictions of them.

For each held-out checkpoint j (step S_j), a method predicts Ŵ_j = Ŵ(α_j) with α_j the coefficient
for step S_j, from the last kept checkpoint P. Over all trained modules (Frobenius norms summed):

    rel_error      = ‖Ŵ_j − W_j‖ / ‖W_j − W₀‖
    error_vs_stay  = ‖Ŵ_j − W_j‖ / ‖W_P − W_j‖        (stay scores 1)
    gain_over_stay = 1 − error_vs_stay
    cosine         = cos(Ŵ_j − W_P, W_j − W_P)         (predicted vs actual update)
    coef_scale     = ⟨D, A⟩ / ‖D‖²  with D = Ŵ_j − W_P, A = W_j − W_P: the factor on α that would
                     have fitted best (1 = well calibrated); `--coef auto` uses it.

All of it comes from the LoRA factors (Gram blocks), never a merged matrix.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from nextx.errors import PredictorError
from nextx.extrapolation import extrapolate
from nextx.io.discover import require_checkpoints
from nextx.io.run import Run
from nextx.lowrank import FactoredUpdate, update_inner
from nextx.predictors import REGISTRY, ModuleContext, make_predictor, trajectory_device, with_seed
from nextx.scoring import paired_difference
from nextx.trajectory import DEFAULT_HORIZON, trajectories

DEFAULT_METHODS = tuple(REGISTRY)  # stay last: the reference


@dataclass
class _Sums:
    error: float = 0.0
    stay: float = 0.0
    actual: float = 0.0
    dot: float = 0.0
    predicted: float = 0.0


@dataclass
class BacktestReport:
    """Scores per method (aggregated and per held-out step), the best method, and the split."""

    fit_steps: list[int]
    holdout_steps: list[int]
    horizon: int
    methods: dict[str, dict] = field(default_factory=dict)
    best: str = "stay"
    reward: dict | None = None  # with a scorer: task reward of each method's prediction (see reward_column)

    def to_dict(self) -> dict:
        return {"fit_steps": self.fit_steps, "holdout_steps": self.holdout_steps, "horizon": self.horizon,
                "methods": self.methods, "best": self.best, **({"reward": self.reward} if self.reward else {})}


def _root_ratio(num: float, den: float, empty: float) -> float:
    """√(num/den) for two sums of squares. Gram expansions of ‖X‖² can round to tiny negatives (−1e-17
    when a method predicts exactly), so both are clamped at 0; a zero denominator gives ``empty``."""
    num, den = max(num, 0.0), max(den, 0.0)
    return math.sqrt(num / den) if den > 0 else empty


def _scores(sums: _Sums) -> dict:
    """Scores of one method from its sums; non-finite sums give NaN scores (never a winner)."""
    if not all(math.isfinite(v) for v in (sums.error, sums.stay, sums.actual, sums.dot, sums.predicted)):
        nan = float("nan")
        return dict.fromkeys(("rel_error", "error_vs_stay", "gain_over_stay", "cosine", "coef_scale"), nan)
    error_vs_stay = _root_ratio(sums.error, sums.stay, 1.0)
    predicted, stay = max(sums.predicted, 0.0), max(sums.stay, 0.0)
    return {
        "rel_error": _root_ratio(sums.error, sums.actual, 0.0),
        "error_vs_stay": error_vs_stay,
        "gain_over_stay": 1 - error_vs_stay if stay > 0 else 0.0,
        "cosine": sums.dot / math.sqrt(predicted * stay) if predicted > 0 and stay > 0 else 0.0,
        "coef_scale": sums.dot / predicted if predicted > 0 else 0.0,
    }


def best_method(methods: dict[str, dict]) -> str:
    """The method with the lowest finite rel_error ("stay" if none is finite): NaN never wins."""
    finite = {m: s["rel_error"] for m, s in methods.items() if math.isfinite(s["rel_error"])}
    return min(finite, key=finite.get) if finite else "stay"


def check_methods(methods: Iterable[str]) -> list[str]:
    """The methods as a list; PredictorError naming the first unknown one."""
    methods = list(methods)
    for method in methods:
        if method not in REGISTRY:
            raise PredictorError(f"unknown method {method!r}", hint=f"Choose from: {', '.join(REGISTRY)}.")
    return methods


def backtest(
    run: Run,
    methods: Iterable[str] = DEFAULT_METHODS,
    *,
    holdout: int = 3,
    horizon: int = DEFAULT_HORIZON,
    seed: int = 0,
    hparams: dict[str, dict] | None = None,
    progress: Callable[[str], None] | None = None,
    scorer=None,
    epoch_progress: dict[str, Callable[[], None]] | None = None,
    module_progress: Callable[[str], None] | None = None,
) -> BacktestReport:
    """Fit each method on the checkpoints before the last ``holdout`` and score its predictions; with
    a ``scorer`` (`nextx.scoring.Scorer`), also the task reward of each method's prediction of the last
    held-out step, paired against the last kept checkpoint ("stay") and the real checkpoint.
    Progress: ``progress(module)`` follows the trajectories, ``epoch_progress[method]()`` a method's
    training epochs, ``module_progress(module)`` the scoring."""
    methods = check_methods(methods)
    if holdout < 1:
        raise PredictorError(f"--holdout must be at least 1, not {holdout}")
    needs_traj = any(REGISTRY[m].needs_trajectories for m in methods)
    kept = len(run.steps) - holdout
    require_checkpoints(len(run.steps), holdout + (horizon + 1 if needs_traj else 2),
                        f"a backtest with --holdout {holdout}" + (f" and --horizon {horizon}" if needs_traj else ""))
    fit_steps, held = run.steps[:kept], run.steps[kept:]
    hparams = with_seed(hparams or {}, seed)
    traj = (trajectories(run, horizon=horizon, progress=progress, device=trajectory_device(hparams)).prefix(kept)
            if needs_traj else None)
    predictors = {}
    for method in methods:
        predictor = make_predictor(method, horizon=horizon, **hparams.get(method, {}))
        predictors[method] = predictor.fit(traj, fit_steps, progress=(epoch_progress or {}).get(method))
    sums = {m: [_Sums() for _ in held] for m in methods}
    for name in run.modules:  # one module in memory at a time
        _add_module_sums(run, name, kept, predictors, traj, sums)
        if module_progress:
            module_progress(name)
    report = BacktestReport(fit_steps, held, horizon)
    for method in methods:
        total = _Sums(*(sum(getattr(s, f) for s in sums[method]) for f in ("error", "stay", "actual", "dot", "predicted")))
        report.methods[method] = {**_scores(total), "per_step": {str(step): _scores(s) for step, s in
                                                                 zip(held, sums[method], strict=True)}}
        if REGISTRY[method].trains:
            info = predictors[method].fit_info
            report.methods[method].update({"fit_seconds": info.get("fit_seconds"), "epochs_run": info.get("epochs_run")})
    report.best = best_method(report.methods)
    if scorer is not None:
        report.reward = reward_column(run, kept, predictors, traj, scorer)
        for method, row in report.reward["methods"].items():
            report.methods[method]["reward"] = row
    return report


def _add_module_sums(run: Run, name: str, kept: int, predictors: dict, traj, sums: dict) -> None:
    """Add one module's squared errors (and the stay / actual / cross terms) of every method's
    prediction of every held-out step to ``sums[method][j]``."""
    last, fit_steps = kept - 1, run.steps[:kept]
    stack = run.deltas(name)
    ctx = ModuleContext(name, stack, run.steps, last, traj.modules[name] if traj else None)
    predictions = {method: predictor.predict(ctx) for method, predictor in predictors.items()}
    for j, index in enumerate(range(kept, len(run.steps))):
        actual = FactoredUpdate({index: 1.0, last: -1.0})  # W_j − W_P
        actual_sq = update_inner(stack, actual, actual)
        total_sq = stack.inner(index, index)
        for method, predictor in predictors.items():
            prediction = predictions[method]
            alpha = predictor.coef_for_step(run.steps[index], fit_steps)
            change = prediction.offset + alpha * prediction.direction  # Ŵ_j − W_P
            error = change - actual
            s = sums[method][j]
            s.error += update_inner(stack, error, error)
            s.stay += actual_sq
            s.actual += total_sq
            s.dot += update_inner(stack, change, actual)
            s.predicted += update_inner(stack, change, change)


def reward_column(run: Run, kept: int, predictors: dict, traj, scorer) -> dict:
    """Task reward of every method's prediction of the last held-out checkpoint (from the last kept
    one), with the paired difference vs stay; and the real checkpoint's reward for reference."""

    start = time.perf_counter()
    past = run.prefix(kept)
    scores = {m: scorer.score(extrapolate(past, p, to_step=run.steps[-1], traj=traj if p.needs_trajectories
                                          else None)) for m, p in predictors.items()}
    stay = scorer.score(extrapolate(past, make_predictor("stay").fit(None, past.steps), ahead=0.0))
    actual = scorer.score(extrapolate(run, make_predictor("stay").fit(None, run.steps), ahead=0.0))
    methods = {}
    for method, score in scores.items():
        delta, se = paired_difference(score, stay)
        methods[method] = {"score": score.mean, "delta_vs_stay": delta, "se": se}
    return {"scorer": scorer.name, "step": run.steps[-1], "from_step": past.steps[-1], "stay": stay.mean,
            "actual": actual.mean, "methods": methods, "seconds": time.perf_counter() - start}


def auto_choice(report: BacktestReport, method: str | None = None) -> tuple[str, float]:
    """(method, α) from a backtest: the best method unless one is given, and α = its coef_scale
    (the calibrated coefficient for one horizon ahead), clipped to [0, 4]."""
    method = method or report.best
    scale = report.methods[method]["coef_scale"]
    return method, min(max(scale, 0.0), 4.0)
