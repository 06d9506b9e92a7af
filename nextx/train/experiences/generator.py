"""Experience generators: a trajectory (problem, completion, correct answer) → one WHEN/IF/THEN line.

`RuleGenerator` is the embedded tasks' generator (no model): it reads the arithmetic and names the
digit column or carry that went wrong (an error-avoidance rule) or, for a correct completion, the
column rule that made it work (an optimisation rule). Its rules never contain the answer."""

from __future__ import annotations

import re

from nextx.train.experiences.line import leaks_answer, render

ADDITION = re.compile(r"(\d+)\+(\d+)=")
ADDING, ANSWERING = "adding multi-digit numbers", "answering an addition"
RULES = {  # kind → (when, if, then); {column} / {previous}: a digit column's name (`_column`)
    "carry": (ADDING, "a column sums to ten or more", "write its ones digit and carry one into the next column"),
    "no carry": (ADDING, "no column sums to ten or more", "add each column on its own, no carry"),
    "not a number": (ANSWERING, "the answer is not a plain number", "write only the digits of the sum"),
    "length": (ADDING, "the sum has a different number of digits than expected",
               "check whether the leftmost column carries into a new digit"),
    "missed carry": (ADDING, "the {previous} column sums to ten or more", "add the carried one to the {column} digit"),
    "wrong digit": (ADDING, "the {column} digit is wrong", "add the {column} digits again, column by column"),
}
MAX_COLUMNS = 8


def _column(index: int) -> str:
    return ("ones", "tens", "hundreds")[index] if index < 3 else f"column {index + 1}"


def _clauses(kind: str, column: int = 0) -> tuple[str, str, str]:
    """(when, if, then) of a rule ``kind`` about digit ``column`` (from the right; its carry from the one before)."""
    names = {"column": _column(column), "previous": _column(max(column - 1, 0))}
    return tuple(part.format(**names) for part in RULES[kind])


def _rule(kind: str, column: int = 0) -> str:
    return render(*_clauses(kind, column))


CLAUSES = tuple(dict.fromkeys(part for kind in RULES for c in range(MAX_COLUMNS) for part in _clauses(kind, c)))
"""Every clause `RuleGenerator` writes for sums of up to ``MAX_COLUMNS`` digits (the DGO tiny model's
tokenizer gives each its own token)."""
WORDS = tuple(dict.fromkeys(["WHEN", "IF", "THEN", *(w for c in CLAUSES for w in c.replace(",", "").split()
                                                   if not w.isdigit())]))
"""Every word `RuleGenerator` writes."""


class RuleGenerator:
    """Experiences for the `addition` task from its own column arithmetic."""

    def __call__(self, problem: str, completion: str, answer: str) -> str | None:
        match = ADDITION.fullmatch(problem.strip())
        if not match:
            return None
        a, b = match[1], match[2]
        width = max(len(a), len(b))
        a, b = a.zfill(width), b.zfill(width)
        carries = _carries(a, b)
        got = completion.strip()
        rule = self._correct(carries) if got == answer else self._wrong(got, answer, carries)
        return None if rule is None or leaks_answer(rule, answer) else rule

    @staticmethod
    def _correct(carries: list[bool]) -> str:
        return _rule("carry" if any(carries) else "no carry")

    @staticmethod
    def _wrong(got: str, answer: str, carries: list[bool]) -> str:
        if not got.isdigit():
            return _rule("not a number")
        if len(got) != len(answer):
            return _rule("length")
        column = next(i for i in range(len(answer)) if got[-1 - i] != answer[-1 - i])  # from the right
        return _rule("missed carry" if column > 0 and carries[column - 1] else "wrong digit", column)


def wrong_attempt(answer: str, rng) -> str:
    """A plausible wrong answer to an addition: one digit changed (¾) or the leading digit dropped (¼)."""
    if len(answer) > 1 and rng.random() < 0.25:
        return answer[1:]
    i = rng.randrange(len(answer))
    digit = rng.choice([d for d in "0123456789" if d != answer[i]])
    return answer[:i] + digit + answer[i + 1 :]


def _carries(a: str, b: str) -> list[bool]:
    """carries[i]: column i (from the right) produces a carry."""
    carry, out = 0, []
    for da, db in zip(reversed(a), reversed(b), strict=True):
        total = int(da) + int(db) + carry
        carry = int(total >= 10)
        out.append(bool(carry))
    return out


def experience_generator(name: str):
    """``rules`` (`RuleGenerator`) or a causal LM's path / Hub id (`ModelGenerator`)."""
    return RuleGenerator() if name == "rules" else ModelGenerator(name)


class ModelGenerator:
    """Experiences from a causal LM (a path or Hub id, safetensors only, no remote code) prompted with
    `prompts.EXTRACT`: the first well-formed WHEN … IF … THEN … line of its greedy answer, unless it
    leaks the problem's answer."""

    def __init__(self, model: str, max_new_tokens: int = 128):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from nextx.io.hub import resolve_model

        path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True)
        self.max_new_tokens = max_new_tokens

    def __call__(self, problem: str, completion: str, answer: str) -> str | None:
        from nextx.train.evaluate import greedy_completions
        from nextx.train.experiences.line import LINE
        from nextx.train.experiences.prompts import EXTRACT

        text = greedy_completions(self.model, self.tokenizer, [EXTRACT.format(problem=problem, solution=completion)],
                                  self.max_new_tokens)[0]
        match = LINE.search(text)
        if match is None or leaks_answer(match[0], answer):
            return None
        return match[0]
