"""A verifiable task: prompts with exact answers, fixed train/eval splits, an exact-match reward."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass

EVAL_SEED = 1_000_003
EVAL_SIZE = 500
VALIDATION_SEED = 2_000_029
VALIDATION_SIZE = 500


@dataclass(frozen=True)
class Example:
    prompt: str
    answer: str


class Task(ABC):
    """One verifiable task. Subclasses draw examples; splits and the reward are shared."""

    name: str
    description: str
    alphabet: str  # every character prompts and answers may use
    max_answer_chars: int
    needs_pretrained = False  # True: prompts the embedded tiny model cannot read (chat); needs --model
    eval_size, validation_size = EVAL_SIZE, VALIDATION_SIZE  # a small population keeps room to train

    @property
    def max_new_tokens(self) -> int:
        """Tokens a greedy answer may take (the tiny models' tokenizers: one per character, plus the end)."""
        return self.max_answer_chars + 1

    @abstractmethod
    def draw(self, rng: random.Random) -> Example:
        """One random example."""

    def population(self) -> list[Example] | None:
        """Every prompt the task can draw, each exactly once, when all are equally likely and few
        enough to score them all (exact accuracy, no sampling noise); None otherwise."""
        return None

    def eval_split(self, size: int | None = None) -> list[Example]:
        """The fixed held-out split: distinct prompts from a reserved seed (never in training)."""
        return self._distinct(random.Random(EVAL_SEED), size or self.eval_size, exclude=set())

    def validation_split(self, size: int | None = None) -> list[Example]:
        """Prompts for choosing between models (reward-selected jumps): distinct, from another
        reserved seed, disjoint from the held-out split and from training."""
        return self._distinct(random.Random(VALIDATION_SEED), size or self.validation_size,
                              exclude={e.prompt for e in self.eval_split()})

    def test_population(self) -> list[Example] | None:
        """The population minus the validation prompts: what the steps-saved measure scores, so a
        jump chosen on validation prompts is never judged on them."""
        population = self.population()
        if population is None:
            return None
        chosen = {e.prompt for e in self.validation_split()}
        return [e for e in population if e.prompt not in chosen]

    def train_examples(self, size: int, seed: int) -> list[Example]:
        """Training examples drawn from ``seed``, excluding every held-out and validation prompt."""
        held = {e.prompt for e in (*self.eval_split(), *self.validation_split())}
        rng = random.Random(seed)
        out = []
        while len(out) < size:
            example = self.draw(rng)
            if example.prompt not in held:
                out.append(example)
        return out

    def _distinct(self, rng: random.Random, size: int, exclude: set[str]) -> list[Example]:
        seen, out = set(exclude), []
        for _ in range(100 * size):
            example = self.draw(rng)
            if example.prompt not in seen:
                seen.add(example.prompt)
                out.append(example)
                if len(out) == size:
                    return out
        raise ValueError(f"task {self.name} has fewer than {size} distinct prompts")

    @staticmethod
    def score(completion: str, answer: str) -> float:
        """Exact match of the completion (up to surrounding whitespace) with the answer: 1.0 or 0.0."""
        return 1.0 if completion.strip() == answer else 0.0
