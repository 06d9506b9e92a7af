"""`addition`: two-digit addition with carries, e.g. ``47+38=`` → ``85``."""

from __future__ import annotations

import random

from nextx.train.tasks.base import Example, Task


class Addition(Task):
    name = "addition"
    description = "a+b with 2-digit operands (carries included); exact-match answer"
    alphabet = "0123456789+="
    max_answer_chars = 3

    def __init__(self, digits: int = 2):
        self.digits = digits

    def draw(self, rng: random.Random) -> Example:
        high = 10**self.digits - 1
        a, b = rng.randint(0, high), rng.randint(0, high)
        return Example(f"{a}+{b}=", str(a + b))

    def population(self) -> list[Example]:
        """All (10^digits)² prompts: a and b are drawn uniformly, so each is equally likely."""
        high = 10**self.digits
        return [Example(f"{a}+{b}=", str(a + b)) for a in range(high) for b in range(high)]
