"""`SaveClock`: the wall-clock seconds since training began at every checkpoint (what a wall-clock
saving is measured on: `nextx.studies.measure.target_savings`)."""

from __future__ import annotations

import time

from transformers import TrainerCallback


class SaveClock(TrainerCallback):
    """``seconds[step]`` = seconds from the start of training to the end of the save at ``step``; added
    last, it runs after the other callbacks, so a jump made at that save counts toward it."""

    def __init__(self):
        self.seconds: dict[int, float] = {}
        self._start = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()
        return control

    def on_save(self, args, state, control, **kwargs):
        self.seconds[state.global_step] = time.perf_counter() - self._start
        return control
