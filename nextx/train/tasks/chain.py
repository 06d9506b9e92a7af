"""`chain`: multi-step arithmetic on three one-digit numbers, e.g. ``7-3+8=`` → ``12`` (may be negative)."""

from __future__ import annotations

import random

from nextx.train.tasks.base import Example, Task


class Chain(Task):
    name = "chain"
    description = "a±b±c with one-digit operands, left to right; exact-match answer"
    alphabet = "0123456789+-="
    max_answer_chars = 3

    def draw(self, rng: random.Random) -> Example:
        a, b, c = (rng.randint(0, 9) for _ in range(3))
        op1, op2 = rng.choice("+-"), rng.choice("+-")
        return _example(a, op1, b, op2, c)

    def population(self) -> list[Example]:
        """All 10·10·10·2·2 = 4000 prompts, each equally likely."""
        return [_example(a, op1, b, op2, c) for a in range(10) for b in range(10) for c in range(10)
                for op1 in "+-" for op2 in "+-"]


def _example(a: int, op1: str, b: int, op2: str, c: int) -> Example:
    value = a + b if op1 == "+" else a - b
    value = value + c if op2 == "+" else value - c
    return Example(f"{a}{op1}{b}{op2}{c}=", str(value))
