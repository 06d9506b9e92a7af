"""How many RLVR steps does a jump save? A paired, monotone, interval-carrying measure.

For one seed, the vanilla run's accuracy-vs-step curve a_v(s) is fit with isotonic regression
(non-decreasing: a vanilla run that is better at step s was there at every later step, up to noise),
giving f(s), linear between checkpoints. An accuracy a maps to the *equivalent vanilla step*

    e(a) = min { x : f(x) ≥ a }                (linear interpolation between checkpoints)

Every checkpoint s of the jumped run after the jump is mapped, and compared with vanilla's own
checkpoint at s mapped the same way (not with s itself: vanilla's noise puts e(a_v(s)) off s, and a
run identical to vanilla must save exactly 0 steps):

    steps_saved      = mean_s (e(a_j(s)) − e(a_v(s)))
    steps_saved_pct  = 100 · Σ_s (e(a_j(s)) − e(a_v(s))) / Σ_s e(a_j(s))   (share of vanilla's steps not needed)
    accuracy_delta   = mean_s (a_j(s) − a_v(s))             (paired, at equal steps)

On a noise-free vanilla curve e(a_v(s)) = s, and a run ahead by exactly K steps saves K.

To vanilla's final accuracy (the papers' "fewer steps to match GRPO"): the target is a* = f(S), the
fitted vanilla accuracy at its last step S; each run reaches it at the first step of its own isotonic
fit that does (s_v for vanilla, s_j for the arm; linear between checkpoints), at the wall-clock time
t(s) its checkpoints record (linear between them), and

    steps_fewer_pct = 100 · (s_v − s_j) / s_v          wall_less_pct = 100 · (t_v(s_v) − t_j(s_j)) / t_v(s_v)

An arm that never reaches a* is counted at its last step (its saving is then an upper bound; the count
of such seeds is reported).

An accuracy above vanilla's best is censored at vanilla's last step (e(s) is then a lower bound: the
seed's saving is under-, never over-stated), one below vanilla's start at its first step; the
counts are reported. Over seeds (vanilla and jumped runs share seed, data order and every step
before the jump), each figure gets its mean, standard error and a Student-t 95% interval.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def monotone_fit(curve: Mapping[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, f(steps)): the isotonic (non-decreasing, least-squares) fit of accuracy vs step."""
    from sklearn.isotonic import IsotonicRegression

    steps = np.array(sorted(curve), dtype=float)
    accuracy = np.array([curve[int(s)] for s in steps], dtype=float)
    if len(steps) < 2:
        raise ValueError("a vanilla curve needs at least two checkpoints")
    return steps, IsotonicRegression(increasing=True).fit_transform(steps, accuracy)


def equivalent_step(steps: np.ndarray, fitted: np.ndarray, accuracy: float) -> tuple[float, int]:
    """(e, censored): the first vanilla step whose fitted accuracy reaches ``accuracy``; censored is
    +1 when it is above vanilla's best (e = the last step, a lower bound), −1 when it is below
    vanilla's start (e = the first step), else 0."""
    if accuracy > fitted[-1]:
        return float(steps[-1]), 1
    if accuracy < fitted[0]:
        return float(steps[0]), -1
    i = int(np.argmax(fitted >= accuracy))  # first index reaching it
    if i == 0 or fitted[i] == accuracy:
        return float(steps[i]), 0
    lo, hi = fitted[i - 1], fitted[i]
    return float(steps[i - 1] + (accuracy - lo) / (hi - lo) * (steps[i] - steps[i - 1])), 0


@dataclass
class SeedSavings:
    """One seed's comparison of a jumped run with its paired vanilla run."""

    steps_saved: float
    steps_saved_pct: float
    accuracy_delta: float
    equivalent_steps: dict[int, float]
    censored_above: int
    censored_below: int

    def to_dict(self) -> dict:
        return {"steps_saved": self.steps_saved, "steps_saved_pct": self.steps_saved_pct,
                "accuracy_delta": self.accuracy_delta,
                "equivalent_steps": {str(s): e for s, e in self.equivalent_steps.items()},
                "censored_above": self.censored_above, "censored_below": self.censored_below}


def seed_savings(vanilla: Mapping[int, float], jumped: Mapping[int, float], jump_step: int) -> SeedSavings:
    """Steps saved by ``jumped`` over ``vanilla`` (step → accuracy) at its checkpoints after ``jump_step``
    that vanilla also has."""
    after = sorted(s for s in jumped if s > jump_step and s in vanilla)
    if not after:
        raise ValueError(f"no checkpoint after the jump at step {jump_step} in both runs")
    steps, fitted = monotone_fit(vanilla)
    mapped = {s: equivalent_step(steps, fitted, jumped[s]) for s in after}
    own = {s: equivalent_step(steps, fitted, vanilla[s])[0] for s in after}
    saved = [mapped[s][0] - own[s] for s in after]
    total_equivalent = sum(mapped[s][0] for s in after)
    return SeedSavings(
        steps_saved=statistics.fmean(saved),
        steps_saved_pct=100.0 * sum(saved) / total_equivalent if total_equivalent > 0 else 0.0,
        accuracy_delta=statistics.fmean(jumped[s] - vanilla[s] for s in after),
        equivalent_steps={s: mapped[s][0] for s in after},
        censored_above=sum(mapped[s][1] == 1 for s in after),
        censored_below=sum(mapped[s][1] == -1 for s in after),
    )


@dataclass
class TargetSavings:
    """One seed's steps and wall-clock to vanilla's final accuracy, arm against vanilla."""

    vanilla_steps: float
    steps: float
    vanilla_seconds: float
    seconds: float
    reached: bool

    @property
    def steps_fewer_pct(self) -> float:
        return 100.0 * (self.vanilla_steps - self.steps) / self.vanilla_steps

    @property
    def wall_less_pct(self) -> float:
        return 100.0 * (self.vanilla_seconds - self.seconds) / self.vanilla_seconds

    def to_dict(self) -> dict:
        return {"vanilla_steps": self.vanilla_steps, "steps": self.steps, "vanilla_seconds": self.vanilla_seconds,
                "seconds": self.seconds, "reached": self.reached, "steps_fewer_pct": self.steps_fewer_pct,
                "wall_less_pct": self.wall_less_pct}


def target_savings(vanilla: Mapping[int, float], jumped: Mapping[int, float], vanilla_clock: Mapping[int, float],
                   jumped_clock: Mapping[int, float]) -> TargetSavings:
    """Steps and seconds each run takes to vanilla's final fitted accuracy (see the module docstring);
    the clocks map a checkpoint step to the seconds since training began."""
    steps, fitted = monotone_fit(vanilla)
    target = float(fitted[-1])
    vanilla_steps, _ = equivalent_step(steps, fitted, target)
    arm_steps, arm_fitted = monotone_fit(jumped)
    reached_at, censored = equivalent_step(arm_steps, arm_fitted, target)
    return TargetSavings(vanilla_steps, reached_at, seconds_at(vanilla_clock, vanilla_steps),
                         seconds_at(jumped_clock, reached_at), censored != 1)


def seconds_at(clock: Mapping[int, float], step: float) -> float:
    """The wall-clock at ``step``, linear between the recorded checkpoints (and from 0 s at step 0)."""
    steps = [0, *sorted(clock)]
    return float(np.interp(step, steps, [0.0, *(clock[s] for s in steps[1:])]))


@dataclass
class Interval:
    """Mean over seeds, its standard error and Student-t 95% interval (n = number of seeds)."""

    mean: float
    se: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Interval:
        from scipy.stats import t

        values = [float(v) for v in values]
        n = len(values)
        if n == 0:
            raise ValueError("an interval needs at least one value")
        mean = statistics.fmean(values)
        if n == 1:
            return cls(mean, math.nan, math.nan, math.nan, 1)  # one seed: an anecdote, no interval
        se = statistics.stdev(values) / math.sqrt(n)
        half = float(t.ppf(0.975, n - 1)) * se
        return cls(mean, se, mean - half, mean + half, n)

    def excludes_zero(self) -> bool:
        return self.n > 1 and (self.low > 0 or self.high < 0)

    def to_dict(self) -> dict:
        return {"mean": self.mean, "se": self.se, "ci95": [self.low, self.high], "n": self.n}

    def points(self) -> str:
        """An accuracy difference in points: '+5.6 points (95% CI +4.9 to +6.3)' ('(1 seed)' without an interval)."""
        if self.n < 2:
            return f"{100 * self.mean:+.1f} points (1 seed)"
        return f"{100 * self.mean:+.1f} points (95% CI {100 * self.low:+.1f} to {100 * self.high:+.1f})"

    def text(self, unit: str = "", digits: int = 0) -> str:
        """'12 steps (95% CI −3 to 27, 5 seeds)' style."""
        fmt = f"{{:+.{digits}f}}"
        if self.n < 2:
            return f"{fmt.format(self.mean)}{unit} (1 seed: no interval)"
        return (f"{fmt.format(self.mean)}{unit} (95% CI {fmt.format(self.low)} to {fmt.format(self.high)}{unit}, "
                f"{self.n} seeds)")


def summarize(per_seed: Sequence[SeedSavings], wall_seconds: Sequence[float] | None = None,
              to_target: Sequence[TargetSavings] | None = None) -> dict:
    """The arm's summary over seeds: steps saved (and %), paired accuracy delta, each with mean, SE
    and 95% interval; wall seconds (training + jumps) and the savings to vanilla's final accuracy
    (steps and wall-clock, %) when given."""
    summary = {
        "steps_saved": Interval.of([s.steps_saved for s in per_seed]).to_dict(),
        "steps_saved_pct": Interval.of([s.steps_saved_pct for s in per_seed]).to_dict(),
        "paired_accuracy_delta": Interval.of([s.accuracy_delta for s in per_seed]).to_dict(),
        "censored_above": sum(s.censored_above for s in per_seed),
        "censored_below": sum(s.censored_below for s in per_seed),
        "seeds": len(per_seed),
    }
    if wall_seconds:
        summary["wall_seconds"] = Interval.of(wall_seconds).to_dict()
    if to_target:
        summary["to_target"] = {
            "steps_fewer_pct": Interval.of([t.steps_fewer_pct for t in to_target]).to_dict(),
            "wall_less_pct": Interval.of([t.wall_less_pct for t in to_target]).to_dict(),
            "not_reached": sum(not t.reached for t in to_target)}
    return summary


def interval_from_dict(data: dict) -> Interval:
    low, high = data["ci95"]
    return Interval(data["mean"], data["se"], low, high, data["n"])
