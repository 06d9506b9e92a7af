"""The internalization filter (DGO §D.2): a rewrite of an experience-guided trajectory is kept only
if its final answer is right, it no longer mentions the experience, it is not too long and it is not
garbage; then at most ``top_k`` rewrites per problem (shortest first: the paper's ranking is not
stated, and shorter is what its optimisation rules ask for)."""

from __future__ import annotations

import re
from collections.abc import Callable

REFERENCES = re.compile(r"\bexperiences?\b|\bWHEN\b.*\bTHEN\b|\brefer(?:ring)? to\b", re.IGNORECASE)
GARBAGE = re.compile(r"(.)\1{15,}|[^\s\w]{20,}")


def rejection_reason(rewrite: str, answer: str, *, max_chars: int, correct: Callable[[str, str], bool]) -> str | None:
    """Why ``rewrite`` is dropped (None: kept)."""
    if not correct(rewrite, answer):
        return "wrong final answer"
    if REFERENCES.search(rewrite):
        return "still refers to the experience"
    if len(rewrite) > max_chars:
        return f"longer than {max_chars} characters"
    if GARBAGE.search(rewrite):
        return "contains a long meaningless run"
    return None


def keep_rewrites(rewrites: dict[str, list[str]], answers: dict[str, str], *, max_chars: int, top_k: int,
                  correct: Callable[[str, str], bool]) -> dict[str, list[str]]:
    """Per problem, the rewrites that pass the filter, at most ``top_k`` of them (shortest first)."""
    kept = {}
    for problem, texts in rewrites.items():
        good = [t for t in texts if rejection_reason(t, answers[problem], max_chars=max_chars, correct=correct) is None]
        if good:
            kept[problem] = sorted(good, key=len)[:top_k]
    return kept
