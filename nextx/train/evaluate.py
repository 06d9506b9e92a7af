"""Greedy accuracy of a model on a task (exact match), batched generation on the CPU.

Scored on a list of prompts: the held-out split (500 prompts, standard error √(p(1−p)/n)), the
validation split (choosing between models), or a task's whole test population (exact: the
expected reward over the task's uniform prompt distribution, no sampling error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from nextx.train.tasks import Example, Task


@dataclass
class EvalResult:
    accuracy: float
    mean_reward: float
    n: int
    per_item: list[float] = field(default_factory=list, repr=False)
    exact: bool = False  # scored on the task's whole (test) population: no sampling error

    @property
    def se(self) -> float:
        """Standard error of the accuracy as an estimate of the population's: 0 when exact."""
        if self.exact or self.n < 2:
            return 0.0
        return math.sqrt(self.accuracy * (1 - self.accuracy) / self.n)

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "se": self.se, "mean_reward": self.mean_reward, "n": self.n,
                "exact": self.exact}


@torch.no_grad()
def greedy_completions(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 512) -> list[str]:
    """Greedy continuations of each prompt (left-padded batches), decoded without special tokens."""
    model.eval()
    tokenizer.padding_side = "left"
    out = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True)
        generated = model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        out += tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return out


def evaluate(model, tokenizer, task: Task, examples: list[Example] | None = None, *, exact: bool = False) -> EvalResult:
    """Accuracy = mean exact-match reward of greedy completions on ``examples`` (default: the
    held-out split); ``exact`` marks them as the task's whole test population."""
    examples = examples if examples is not None else task.eval_split()
    completions = greedy_completions(model, tokenizer, [e.prompt for e in examples], task.max_new_tokens)
    rewards = [task.score(c, e.answer) for c, e in zip(completions, examples, strict=True)]
    accuracy = sum(rewards) / len(rewards)
    return EvalResult(accuracy, accuracy, len(rewards), rewards, exact)


def evaluate_population(model, tokenizer, task: Task) -> EvalResult:
    """Exact accuracy on the task's test population when it has one, else on the held-out split."""
    population = task.test_population()
    if population is None:
        return evaluate(model, tokenizer, task)
    return evaluate(model, tokenizer, task, population, exact=True)
