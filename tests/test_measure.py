"""The steps-saved measure on synthetic curves with known answers."""

import math
import random

import pytest
from helpers import raises_whole

from nextx.studies.measure import Interval, equivalent_step, monotone_fit, seed_savings, summarize

STEPS = list(range(0, 401, 25))


def linear_curve(shift: float = 0.0, noise: float = 0.0, rng=None) -> dict[int, float]:
    """accuracy = 0.3 + 0.001·(step + shift) (+ Gaussian noise)."""
    return {s: 0.3 + 0.001 * (s + shift) + (rng.gauss(0, noise) if noise else 0.0) for s in STEPS}


@pytest.mark.parametrize("shift", [0, 10, 37.5, 100])
def test_a_curve_shifted_by_k_steps_saves_k(shift):
    savings = seed_savings(linear_curve(), linear_curve(shift), jump_step=150)
    # the checkpoints whose shifted accuracy stays within vanilla's range map exactly
    exact = [s for s in STEPS if s > 150 and s + shift <= 400]
    assert all(savings.equivalent_steps[s] == pytest.approx(s + shift, abs=1e-9) for s in exact)
    censored = [s for s in STEPS if s > 150 and s + shift > 400]
    assert savings.censored_above == len(censored) and savings.censored_below == 0
    if not censored:
        assert savings.steps_saved == pytest.approx(shift, abs=1e-9)
        assert savings.accuracy_delta == pytest.approx(0.001 * shift)
    else:  # censored at step 400: a lower bound, never more than the truth
        assert 0 < savings.steps_saved < shift


def test_a_curve_behind_vanilla_saves_negative_steps():
    savings = seed_savings(linear_curve(), linear_curve(-50), jump_step=150)
    assert savings.steps_saved == pytest.approx(-50)
    assert savings.steps_saved_pct == pytest.approx(100 * -50 * 10 / sum(s - 50 for s in STEPS if s > 150))


def test_noise_only_gives_an_interval_containing_zero():
    rng = random.Random(0)
    covered = 0
    for _trial in range(40):
        per_seed = [seed_savings(linear_curve(noise=0.01, rng=rng), linear_curve(noise=0.01, rng=rng), 150)
                    for _ in range(6)]
        covered += Interval.of([s.steps_saved for s in per_seed]).low <= 0 <= Interval.of(
            [s.steps_saved for s in per_seed]).high
    assert covered >= 34  # a 95% interval covers the truth (0) in ≥ 85% of 40 trials


def test_non_monotone_vanilla_curve_is_fitted_monotone():
    vanilla = {0: 0.30, 100: 0.50, 200: 0.40, 300: 0.60, 400: 0.60}
    steps, fitted = monotone_fit(vanilla)
    assert list(fitted) == pytest.approx([0.30, 0.45, 0.45, 0.60, 0.60])
    assert all(b >= a for a, b in zip(fitted, fitted[1:], strict=False))
    assert equivalent_step(steps, fitted, 0.45) == (100.0, 0)  # first step reaching a plateau
    assert equivalent_step(steps, fitted, 0.525)[0] == pytest.approx(250.0)
    assert equivalent_step(steps, fitted, 0.61) == (400.0, 1)
    assert equivalent_step(steps, fitted, 0.10) == (0.0, -1)


def test_interval_is_student_t():
    interval = Interval.of([1.0, 2.0, 3.0, 4.0, 5.0])
    se = math.sqrt(2.5) / math.sqrt(5)
    assert interval.mean == 3.0 and interval.se == pytest.approx(se)
    assert interval.high - interval.mean == pytest.approx(2.7764451 * se, rel=1e-6)  # t(0.975, 4)
    assert interval.excludes_zero()
    one = Interval.of([4.0])
    assert one.n == 1 and math.isnan(one.low) and "no interval" in one.text()


def test_summary_fields():
    early = [{s: a for s, a in linear_curve(k).items() if s <= 300} for k in (10, 20, 30)]  # no censoring
    per_seed = [seed_savings(linear_curve(), jumped, 150) for jumped in early]
    summary = summarize(per_seed, wall_seconds=[60.0, 62.0, 61.0])
    assert summary["steps_saved"]["mean"] == pytest.approx(20.0) and summary["seeds"] == 3
    assert summary["paired_accuracy_delta"]["mean"] == pytest.approx(0.02)
    low, high = summary["steps_saved"]["ci95"]
    assert low < 20 < high and summary["wall_seconds"]["mean"] == pytest.approx(61.0)


def test_no_post_jump_checkpoint_is_an_error():
    with raises_whole(ValueError, "no checkpoint after the jump at step 150 in both runs"):
        seed_savings(linear_curve(), {s: 0.5 for s in STEPS if s <= 150}, jump_step=150)


def test_a_run_identical_to_a_noisy_vanilla_saves_exactly_zero():
    rng = random.Random(1)
    vanilla = linear_curve(noise=0.02, rng=rng)
    savings = seed_savings(vanilla, dict(vanilla), jump_step=150)
    assert savings.steps_saved == 0.0 and savings.accuracy_delta == 0.0 and savings.steps_saved_pct == 0.0
