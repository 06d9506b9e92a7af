"""`TaskScorer`: the embedded tasks' verifier as an evaluation hook, scoring candidates from memory.

The base model is loaded once; each candidate's trained weights are set to W₀ + (Ŵ − W₀) (formed in
float32 from the factors, tiny for the embedded model) and the model answers the task's validation
prompts greedily. No adapter is written to disk.
"""

from __future__ import annotations

from pathlib import Path

import torch

from nextx.errors import NextxError
from nextx.lowrank import dense_of
from nextx.scoring import Score
from nextx.train.evaluate import evaluate
from nextx.train.quiet import quiet_transformers
from nextx.train.tasks import Example, Task


class TaskScorer:
    """Greedy exact-match accuracy of a candidate on ``examples`` (default: the task's validation split,
    disjoint from training and from the held-out test prompts)."""

    def __init__(self, task: Task, base: str | Path, examples: list[Example] | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_transformers()
        self.task = task
        self.examples = examples if examples is not None else task.validation_split()
        self.model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        self.tokenizer = AutoTokenizer.from_pretrained(base)
        self.modules = dict(self.model.named_modules())
        self.base_weights: dict[str, torch.Tensor] = {}
        self.name = f"{task.name} verifier, {len(self.examples)} validation prompts"

    @torch.no_grad()
    def load(self, candidate) -> None:
        """Set every trained module of the model to the candidate's weights."""
        for name, stack, update in candidate.module_updates():
            module = self.modules.get(name)
            if module is None or not hasattr(module, "weight"):
                raise NextxError(f"the base model has no module {name}", hint="Score with the run's own base model.")
            w0 = self.base_weights.setdefault(name, module.weight.detach().clone())
            module.weight.copy_(w0 + dense_of(stack, update, torch.float32).to(w0.dtype))

    def score(self, candidate) -> Score:
        self.load(candidate)
        result = evaluate(self.model, self.tokenizer, self.task, self.examples)
        return Score(result.accuracy, result.per_item)
