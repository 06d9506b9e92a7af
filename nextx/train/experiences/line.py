"""One experience: ``WHEN <domain/phase>. IF <condition or likely error>. THEN <action>.`` (DGO §3.2.1)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

LINE = re.compile(r"WHEN (?P<when>[^.]+)\. IF (?P<if>[^.]+)\. THEN (?P<then>[^.]+)\.")


@dataclass
class Experience:
    """A bank entry: the rule's text, the problem it was extracted from, the round that added it and
    its validation score (None until measured)."""

    text: str
    source: str = ""
    round: int = 0
    score: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def render(when: str, condition: str, then: str) -> str:
    """The experience line, each part stripped of its own final period."""
    parts = [p.strip().rstrip(".") for p in (when, condition, then)]
    return f"WHEN {parts[0]}. IF {parts[1]}. THEN {parts[2]}."


def is_experience(text: str) -> bool:
    return LINE.fullmatch(text.strip()) is not None


def leaks_answer(text: str, answer: str) -> bool:
    """True if the experience states the problem's final answer (as a whole number in its text)."""
    return answer.strip() != "" and re.search(rf"(?<!\d){re.escape(answer.strip())}(?!\d)", text) is not None
