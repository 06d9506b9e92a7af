"""`FactorHistory`: the checkpoints a jump is decided from, held in memory as the trainer records them.

At each recorded step it keeps every module's live LoRA factors (A, B) — copied to the CPU in their
own dtype, exactly the tensors a checkpoint file of that step holds — and the base offsets in force;
`run()` serves them as a `nextx.io.run.Run`, so the predictors read the live history exactly as they
would read the checkpoints on disk, without reading them back. A resumed trainer can start it from
the checkpoints already on disk (`extend_from_run`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from nextx.io.discover import Checkpoint
from nextx.io.run import ModuleSpec, Run


class MemoryRun(Run):
    """A LoRA run whose checkpoints are held in memory, read exactly as files holding the same tensors."""

    def _lora_tensors(self, checkpoint: Checkpoint, spec: ModuleSpec, check: bool = False) -> list[torch.Tensor]:
        return list(self._files[("memory", checkpoint.path)][spec.name])

    @classmethod
    def of(cls, source: str, modules: dict[str, ModuleSpec], snapshots: list[tuple[int, dict, dict]]) -> MemoryRun:
        """From (step, module → (A, B), module → offset (L, R)) per checkpoint."""
        checkpoints, held = [], {}
        for step, factors, offsets in snapshots:
            checkpoint = Checkpoint(step, Path(f"{source}/step-{step}"), "lora")
            checkpoints.append(checkpoint)
            held[("memory", checkpoint.path)], held[("offsets", checkpoint.path)] = factors, offsets
        return cls(source, "memory", "lora", checkpoints, modules, _files=held)


class FactorHistory:
    """Recorded steps, each with module → (A, B) and module → accumulated base offset (L, R)."""

    def __init__(self, source: str = "memory", include_offsets: bool = True):
        self.source, self.include_offsets = source, include_offsets  # False: the training's own path only
        self.specs: dict[str, ModuleSpec] = {}
        self.snapshots: list[tuple[int, dict, dict]] = []

    @property
    def steps(self) -> list[int]:
        return [step for step, _, _ in self.snapshots]

    def record(self, step: int, live, offsets: dict) -> None:
        """Keep the live factors at ``step`` (and the offsets in force): a copy, training goes on."""
        if not self.specs:  # by name, as a run on disk lists them: a resumed history fits the same
            self.specs = dict(sorted(live.specs().items()))
        factors = {name: tuple(t.detach().to("cpu", copy=True) for t in live.factors(name)) for name in self.specs}
        self.snapshots = [s for s in self.snapshots if s[0] != step]  # a step recorded again replaces itself
        self.snapshots.append((step, factors, dict(offsets) if self.include_offsets else {}))
        self.snapshots.sort(key=lambda s: s[0])

    def extend_from_run(self, run: Run) -> None:
        """Add the checkpoints of a run on disk (e.g. before a resume) that are not recorded yet."""
        if not self.specs:
            self.specs = {name: spec for name, spec in run.modules.items()}
        known = set(self.steps)
        for index, checkpoint in enumerate(run.checkpoints):
            if checkpoint.step in known:
                continue
            factors = {name: tuple(run.checkpoint_file(index).get_many(list(spec.keys), check=False))
                       for name, spec in run.modules.items()}
            offsets = dict(run.checkpoint_offsets(index)) if self.include_offsets else {}
            self.snapshots.append((checkpoint.step, factors, offsets))
        self.snapshots.sort(key=lambda s: s[0])

    def run(self) -> MemoryRun:
        """The recorded history as a run (checkpoint i ↔ the i-th recorded step)."""
        return MemoryRun.of(self.source, self.specs, self.snapshots)
