"""DGO (TTS): experience-guided test-time scaling over rounds (DGO §3.3), answers kept out of it.

    round 0   accuracy with no experience ("DGO (zero)")
    round r   accuracy with each test prompt preceded by its k experiences retrieved from bank B_r
              (B_1 = the given bank); then B_{r+1} = renew(B_r) from the policy's guided answers to the
              *validation* prompts — the same generator and acceptance rule as training
              (`ExperienceBank.renew`: kept only if validation accuracy with the bank improves)

The paper's later rounds summarise experiences from the previous round's attempts at the same test
problem with a generator that judges correctness itself; nextx's generators need the right answer to
write a rule, so renewal reads validation prompts only and never a test prompt's answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nextx.train.dgo.bank import BANK_FILE, ExperienceBank
from nextx.train.dgo.loop import (
    RECORD_FILE,
    candidates_from,
    decision_counts,
    guided_accuracy,
    guided_examples,
)
from nextx.train.dgo.retrieval import embedder
from nextx.train.evaluate import evaluate, greedy_completions
from nextx.train.experiences.generator import experience_generator
from nextx.train.tasks import Example, Task


@dataclass
class Round:
    """One round: its number (0 = no experience), the bank's size, test accuracy, renewal's counts."""

    round: int
    bank: int
    accuracy: float
    added: int = 0
    replaced: int = 0
    rejected: int = 0

    def to_dict(self) -> dict:
        return dict(vars(self))


def guided_attempts(model, tokenizer, task: Task, examples: list[Example], bank: ExperienceBank, *, k: int,
                    style: str) -> list:
    """The policy's greedy answers to ``examples`` with retrieved experiences, as renewal reads rollouts:
    (row with problem, answer and experiences, completion, reward)."""
    guided, retrieved = guided_examples(examples, bank, k=k, style=style)
    completions = greedy_completions(model, tokenizer, [g.prompt for g in guided], task.max_new_tokens)
    return [({"problem": e.prompt, "answer": e.answer, "experiences": "\n".join(r)}, c, task.score(c, e.answer))
            for e, r, c in zip(examples, retrieved, completions, strict=True)]


def experience_rounds(model, tokenizer, task: Task, bank: ExperienceBank, test: list[Example],
                      validation: list[Example], generate, *, rounds: int, k: int = 1, style: str = "compact",
                      candidates: int = 16, threshold: float = 0.8, seed: int = 0) -> list[Round]:
    """Rounds 0…``rounds`` (see the module docstring); ``bank`` is renewed in place. Test and validation
    prompts must be disjoint (ValueError otherwise): renewal would otherwise read test answers."""
    if {e.prompt for e in test} & {e.prompt for e in validation}:
        raise ValueError("test and validation prompts overlap: renewal must never read a test prompt's answer")
    out = [Round(0, len(bank), evaluate(model, tokenizer, task, test).accuracy)]
    for r in range(1, rounds + 1):
        out.append(Round(r, len(bank), guided_accuracy(model, tokenizer, task, test, bank, k=k, style=style).accuracy))
        if r == rounds:
            break
        attempts = guided_attempts(model, tokenizer, task, validation, bank, k=k, style=style)
        new = candidates_from(attempts, generate, bank, candidates, seed * 1000 + r, r)
        decisions = bank.renew(new, lambda b: guided_accuracy(model, tokenizer, task, validation, b, k=k,
                                                              style=style).accuracy, threshold=threshold,
                               current=sum(reward for *_, reward in attempts) / len(attempts))  # greedy: the same pass
        out[-1].added, out[-1].replaced, out[-1].rejected = (n for _, n in decision_counts(decisions))
    return out


@dataclass
class TTSResult:
    """`tts_from_paths`' answer: the rounds, the bank after them, and what was used."""

    rounds: list[Round]
    bank: ExperienceBank
    bank_file: Path
    k: int
    style: str
    test_size: int


def tts_from_paths(checkpoint, task: Task, base, bank_path, *, rounds: int, k: int | None = None,
                   population: bool = False) -> TTSResult:
    """`experience_rounds` for a checkpoint and a bank file or DGO run directory; the run's record
    (``nextx-dgo.json``) supplies k, the prompt style, retriever, generator and renewal settings,
    else the embedded defaults (compact prompts, rules, TF-IDF)."""
    from nextx.train.runs import load_for_eval

    bank_path = Path(bank_path)
    file = bank_path / BANK_FILE if bank_path.is_dir() else bank_path
    record_file = (bank_path if bank_path.is_dir() else bank_path.parent) / RECORD_FILE
    record = json.loads(record_file.read_text()) if record_file.exists() else {}
    config = record.get("config", {})
    k = k or config.get("dgo_experiences", 1)
    style = record.get("style", "instruct" if task.needs_pretrained else "compact")
    bank = ExperienceBank.load(file, embedder(config.get("dgo_retriever", "tfidf")))
    model, tokenizer = load_for_eval(checkpoint, base)
    test = (task.test_population() if population else None) or task.eval_split()
    found = experience_rounds(
        model, tokenizer, task, bank, test, task.validation_split(config.get("dgo_validation_size", 200)),
        experience_generator(config.get("dgo_generator", "rules")), rounds=rounds, k=k, style=style,
        candidates=config.get("dgo_candidates", 16), threshold=config.get("dgo_similarity", 0.8),
        seed=config.get("seed", 0))
    return TTSResult(found, bank, file, k, style, len(test))
