"""Greedy held-out accuracy of a model on a task (exact match), batched generation on the CPU."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nextx.train.tasks import Example, Task


@dataclass
class EvalResult:
    accuracy: float
    mean_reward: float
    n: int

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "mean_reward": self.mean_reward, "n": self.n}


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


def evaluate(model, tokenizer, task: Task, examples: list[Example] | None = None) -> EvalResult:
    """Accuracy = mean exact-match reward of greedy completions on the held-out split."""
    examples = examples if examples is not None else task.eval_split()
    completions = greedy_completions(model, tokenizer, [e.prompt for e in examples], task.max_answer_chars + 1)
    rewards = [task.score(c, e.answer) for c, e in zip(completions, examples, strict=True)]
    accuracy = sum(rewards) / len(rewards)
    return EvalResult(accuracy, accuracy, len(rewards))
