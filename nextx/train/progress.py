"""`ProgressCallback`: a rich progress bar on stderr and one clean line per checkpoint:
``step 150 | reward 0.612 | held-out accuracy 62.2%`` (accuracy for built-in tasks only)."""

from __future__ import annotations

from transformers import TrainerCallback

from nextx.train.evaluate import evaluate


class ProgressCallback(TrainerCallback):
    def __init__(self, console, task=None, tokenizer=None):
        self.console, self.task, self.tokenizer = console, task, tokenizer
        self.progress = None

    def on_train_begin(self, args, state, control, **kwargs):
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("GRPO"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                     console=self.console, transient=True)
            self.progress.start()
            self.bar = self.progress.add_task("train", total=state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress:
            self.progress.update(self.bar, completed=state.global_step)

    def on_save(self, args, state, control, model=None, **kwargs):
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
        if self.progress:
            self.progress.stop()
