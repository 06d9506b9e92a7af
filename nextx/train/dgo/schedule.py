"""The annealed experience mixture (DGO §3.2.2): iteration k trains on a share α_k of prompts that
carry retrieved experiences and 1 − α_k plain ones; the paper's schedule is α = 1.0 → 0.5 → 0.25.

Whether the paper draws the share per instance or splits exactly is not stated; nextx splits exactly
(round(α·n) prompts, a seeded random subset), so the share is what the config says on every run."""

from __future__ import annotations

import random
from collections.abc import Sequence

PAPER_SCHEDULE = (1.0, 0.5, 0.25)


def experience_share(iteration: int, schedule: Sequence[float] = PAPER_SCHEDULE) -> float:
    """α for ``iteration`` (from 0); iterations past the schedule keep its last value."""
    return float(schedule[min(iteration, len(schedule) - 1)])


def with_experience(count: int, share: float, seed: int) -> set[int]:
    """The indices (of ``count`` prompts) that get experiences this iteration: exactly round(share·count)."""
    if not 0 <= share <= 1:
        raise ValueError(f"experience share must be in [0, 1], not {share}")
    return set(random.Random(seed).sample(range(count), round(share * count)))
