"""Rewriting experience-guided trajectories so they stand without the experience (DGO §3.2.3).

`PolicyRewriter`: the current RL policy re-authors each trajectory from `prompts.REWRITE` (the paper's
way, for instruction-following models). `AnswerRewriter`: for the embedded tasks, whose trajectories
are the answer alone: there is no reasoning to re-author, so the rewrite is the trajectory itself and
internalisation is the SFT of plain prompts on the answers the guided policy found. Both go through
the same filter (`filters.keep_rewrites`) afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Guided:
    """One experience-guided trajectory: the plain problem, the experiences it was shown, the prompt
    (with them), the completion and the correct answer."""

    problem: str
    experiences: list[str]
    prompt: str
    completion: str
    answer: str


class AnswerRewriter:
    def __call__(self, items: list[Guided]) -> list[str]:
        return [item.completion for item in items]


class PolicyRewriter:
    """Greedy rewrites by ``model`` (the policy) of each guided trajectory."""

    def __init__(self, model, tokenizer, max_new_tokens: int):
        self.model, self.tokenizer, self.max_new_tokens = model, tokenizer, max_new_tokens

    def __call__(self, items: list[Guided]) -> list[str]:
        from nextx.train.evaluate import greedy_completions
        from nextx.train.experiences.prompts import REWRITE

        prompts = [REWRITE.format(experiences="\n".join(i.experiences), problem=i.problem, solution=i.completion)
                   for i in items]
        return greedy_completions(self.model, self.tokenizer, prompts, self.max_new_tokens)
