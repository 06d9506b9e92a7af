"""`chat-arith`: ``a + b`` or ``a - b`` (operands 0–20) asked in the ChatML chat format of instruct LLMs
such as SmolLM2; the reward is exact on the first integer of the reply ("7", "7." and "The answer
is 7." all score). For pretrained models (``--model``): the embedded tiny model cannot read chat."""

from __future__ import annotations

import random
import re

from nextx.train.tasks.base import Example, Task

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
INTEGER = re.compile(r"-?\d+")


class ChatArithmetic(Task):
    name = "chat-arith"
    description = "a+b or a-b with operands 0-20, in chat format; the reply's first integer is scored"
    alphabet = ""  # not for the embedded tiny model: a pretrained model's tokenizer reads it
    max_answer_chars = 3
    max_new_tokens = 8
    needs_pretrained = True
    eval_size = validation_size = 200  # of 882 prompts: 482 left to train on

    def draw(self, rng: random.Random) -> Example:
        return _example(rng.randint(0, 20), rng.choice("+-"), rng.randint(0, 20))

    def population(self) -> list[Example]:
        """All 21·2·21 = 882 prompts, each equally likely."""
        return [_example(a, op, b) for a in range(21) for op in "+-" for b in range(21)]

    @staticmethod
    def score(completion: str, answer: str) -> float:
        """1.0 when the first integer of the completion is the answer, else 0.0."""
        found = INTEGER.search(completion)
        return 1.0 if found is not None and found.group() == answer else 0.0


def _example(a: int, op: str, b: int) -> Example:
    question = f"What is {a} {op} {b}? Reply with the number only."
    prompt = (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
              "<|im_start|>assistant\n")
    return Example(prompt, str(a + b if op == "+" else a - b))
