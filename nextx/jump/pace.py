"""`JumpPace`: when the jumps come and how far each goes relative to the first."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JumpPace:
    """Jump at step ``at`` and, with ``every``, at ``at`` + k·``every``; jump k (from 0) goes
    ``damping``ᵏ × the first jump's length. No jump at the last training step (nothing trains after it)."""

    at: int
    every: int | None = None
    damping: float = 1.0

    def __post_init__(self):
        if not 0 < self.damping <= 1:
            raise ValueError(f"damping must be in (0, 1], not {self.damping!r}")

    def due(self, step: int, max_steps: int | None = None) -> bool:
        """True at T and at T + k·every (before the last step)."""
        if max_steps is not None and step >= max_steps:
            return False
        if step == self.at:
            return True
        return bool(self.every) and step > self.at and (step - self.at) % self.every == 0

    def scale(self, jumps_made: int) -> float:
        """damping^k for the jump after ``jumps_made`` jumps."""
        return self.damping ** jumps_made
