"""`ProgressCallback`: training's stage in the one progress display (`nextx.progress.progress_bars`)
and one clean line per checkpoint: ``step 150 | reward 0.612 | held-out accuracy 62.2%`` (accuracy
for built-in tasks only)."""

from __future__ import annotations

import contextlib

from transformers import TrainerCallback

from nextx.progress import progress_bars
from nextx.train.evaluate import evaluate


class ProgressCallback(TrainerCallback):
    def __init__(self, console, task=None, tokenizer=None):
        self.console, self.task, self.tokenizer = console, task, tokenizer
        self.stack, self.advance, self.done = None, None, 0

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:  # one display and one line per checkpoint, not one per rank
            self.console = None
            return
        self.stack = contextlib.ExitStack()
        (self.advance,) = self.stack.enter_context(progress_bars(self.console, ("GRPO", state.max_steps)))
        self.done = state.global_step
        for _ in range(self.done):
            self.advance()

    def on_step_end(self, args, state, control, **kwargs):
        while self.advance is not None and self.done < state.global_step:
            self.advance()
            self.done += 1

    def on_save(self, args, state, control, model=None, **kwargs):
        if self.console is None:
            return
        rewards = [entry["reward"] for entry in state.log_history if "reward" in entry]
        line = f"step {state.global_step}"
        if rewards:
            line += f" | reward {rewards[-1]:.3f}"
        if self.task is not None and model is not None:
            accuracy = evaluate(model, self.tokenizer, self.task).accuracy
            model.train()
            line += f" | held-out accuracy {accuracy:.1%}"
        self.console.print(line)

    def on_train_end(self, args, state, control, **kwargs):
        if self.stack is not None:
            self.stack.close()
            self.stack, self.advance = None, None
