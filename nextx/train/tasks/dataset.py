"""A user's dataset as a task: its rows (prompt, answer), its verifier, and a validation split taken
off the training rows — what DGO's renewal and filter need (``nextx train --algo dgo --dataset``).

The split is by a hash of each prompt, so it does not depend on row order or seed: the
``validation_size`` prompts with the smallest SHA-256 are validation (at most a fifth of the
distinct prompts), every other row trains. A prompt is never on both sides.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from pathlib import Path

from nextx.errors import NextxError
from nextx.train.tasks.base import Example, Task

VERIFIERS = ("exact", "math")


def verifier_score(verifier: str) -> Callable[[str, str], float]:
    """(completion, answer) → 1.0 or 0.0: exact match (`Task.score`), or math-verify equivalence."""
    if verifier == "exact":
        return Task.score
    if verifier != "math":
        raise NextxError(f"unknown verifier {verifier!r}", hint=f"Choose one of: {', '.join(VERIFIERS)}.")
    from math_verify import parse, verify

    def score(completion: str, answer: str) -> float:
        return 1.0 if verify(parse(answer), parse(completion)) else 0.0

    return score


def load_rows(source: str, prompt_column: str = "prompt", answer_column: str = "answer"):
    """A local json/jsonl/csv/parquet file or a Hub dataset's train split, as a `datasets.Dataset`
    with exactly the columns prompt and answer; one NextxError line for a bad file or missing column."""
    from datasets import load_dataset

    path = Path(source)
    if path.exists():
        kind = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}.get(path.suffix)
        if kind is None:
            raise NextxError("unsupported dataset file type", path=path, hint="Use .jsonl, .json, .csv or .parquet.")
        data = load_dataset(kind, data_files=str(path), split="train")
    else:
        data = load_dataset(source, split="train")
    for column in (prompt_column, answer_column):
        if column not in data.column_names:
            raise NextxError(f"dataset has no column {column!r} (columns: {', '.join(data.column_names)})",
                             path=source, hint="Pass --prompt-column / --answer-column.")
    return data.select_columns([prompt_column, answer_column]).rename_columns(
        {prompt_column: "prompt", answer_column: "answer"})


def _hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()


class DatasetTask(Task):
    """Rows of a user's dataset with a verifier; validation split off by prompt hash (module docstring)."""

    name = "dataset"
    description = "a user's dataset"
    alphabet = ""
    max_answer_chars = 0

    def __init__(self, rows: list[Example], score: Callable[[str, str], float], *, validation_size: int,
                 max_new_tokens: int, source: str = ""):
        prompts = sorted({e.prompt for e in rows}, key=_hash)
        if len(prompts) < 10:
            raise NextxError(f"the dataset has {len(prompts)} distinct prompts; DGO needs at least 10 (a fifth "
                             "of them for validation)", path=source or None)
        held = set(prompts[: min(validation_size, len(prompts) // 5)])
        self.validation = [e for e in _first_per_prompt(rows) if e.prompt in held]
        self.training = [e for e in rows if e.prompt not in held]
        self._score, self._max_new_tokens = score, max_new_tokens

    @classmethod
    def from_config(cls, config) -> DatasetTask:
        """The task of a run config with ``--dataset`` (its columns, verifier, validation size, length)."""
        data = load_rows(config.dataset, config.prompt_column, config.answer_column)
        rows = [Example(str(p), str(a)) for p, a in zip(data["prompt"], data["answer"], strict=True)]
        return cls(rows, verifier_score(config.verifier), validation_size=config.dgo_validation_size,
                   max_new_tokens=config.max_completion_length, source=config.dataset)

    @property
    def max_new_tokens(self) -> int:
        return self._max_new_tokens

    def score(self, completion: str, answer: str) -> float:
        return self._score(completion, answer)

    def draw(self, rng: random.Random) -> Example:
        return rng.choice(self.training)

    def validation_split(self, size: int | None = None) -> list[Example]:
        return self.validation[:size] if size else list(self.validation)

    def eval_split(self, size: int | None = None) -> list[Example]:
        """No held-out test set of its own: the validation prompts (never trained on)."""
        return self.validation_split(size)

    def train_examples(self, size: int, seed: int) -> list[Example]:
        """``size`` training rows: seeded passes over the training rows, each pass shuffled."""
        rng, out = random.Random(seed), []
        while len(out) < size:
            order = list(self.training)
            rng.shuffle(order)
            out += order[: size - len(out)]
        return out


def _first_per_prompt(rows: list[Example]) -> list[Example]:
    first: dict[str, Example] = {}
    for example in rows:
        first.setdefault(example.prompt, example)
    return list(first.values())
