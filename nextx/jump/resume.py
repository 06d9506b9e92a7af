"""Resume a run with in-loop jumps: what the trainer's own resume does not restore.

A trainer resuming from ``checkpoint-N`` restores W₀ from the base model, the LoRA factors, Adam and
the RNG — but not the offsets that jumps folded into W₀, the history the next jump is decided from,
or the jump record the pace counts. `restore` reads them from the run (rank 0), broadcasts them,
adds the offsets to every rank's base weights, and redoes a jump that was due at step N (the
checkpoint at a jump step holds the weights before its jump); with ``warm`` fits, the fits the next
one starts from (`nextx.jump.warm`).
"""

from __future__ import annotations

from pathlib import Path

from nextx.errors import NextxError
from nextx.io.discover import discover_checkpoints
from nextx.io.offsets import read_base_history, read_jump_log, read_offset_jumps, write_jump_log
from nextx.io.run import load_run
from nextx.jump.warm import WARM_DIR, load_warm


def restore(engine, run_dir: Path, step: int, live, max_steps: int | None, writer: bool = True) -> None:
    """Bring ``engine`` and the live model back to the uninterrupted run's state right after the save
    at ``step`` (NextxError with one line when the run cannot give it)."""
    state = None
    if engine.collective.rank == 0:
        _, found = discover_checkpoints(Path(run_dir), "trl")
        kept = [(c.step, c.path) for c in found if c.step <= step]
        if not kept or kept[-1][0] != step:
            raise NextxError(f"cannot restore the jumps: the run has no checkpoint-{step}", path=run_dir)
        run = load_run(None, checkpoints=kept)
        jumps = [j for j in read_jump_log(run_dir) if j["step"] < step] or read_offset_jumps(kept[-1][1])
        offsets = run.checkpoint_offsets(len(kept) - 1)
        additions = read_base_history(kept[-1][1])
        engine.history.extend_from_run(run)
        if engine.warm:
            _restore_warm(engine, kept[-1][1], any(j.get("jumped") for j in jumps))
        state = (offsets, jumps, additions if additions is not None else ([dict(offsets)] if offsets else []),
                 engine.history.specs, engine.history.snapshots[-1])
    offsets, jumps, additions, specs, latest = engine.collective.broadcast(state)
    if engine.collective.rank != 0:  # the other ranks keep the resume step's factors (what a jump there reads)
        engine.history.specs = engine.history.specs or specs
        engine.history.snapshots = [latest]
    specs = live.specs()
    unknown = sorted({name for changes in additions for name in changes} - set(specs))
    if unknown:
        raise NextxError(f"cannot restore the jumps: the checkpoint's offsets name module {unknown[0]}, which the "
                         "model does not train", path=Path(run_dir) / f"checkpoint-{step}")
    for changes in additions:  # the same additions in the same order: the same base weights, bit for bit
        for name, (left, right) in changes.items():
            live.add_to_base(name, left, right)
    engine.offsets, engine.jumps, engine.additions = dict(offsets), list(jumps), list(additions)
    if engine.maybe_jump(step, max_steps, live) is not None and writer:
        write_jump_log(run_dir, engine.jumps)


def _restore_warm(engine, checkpoint: Path, jumped: bool) -> None:
    """The fits the uninterrupted run's next jump starts from (rank 0 fits); a checkpoint written
    without them (an older nextx) starts cold, and says so."""
    fitted = load_warm(checkpoint)
    if fitted is None and jumped and engine.log:
        engine.log(f"{checkpoint.name} has no {WARM_DIR}/: the next jump's fit starts cold, not from the last one's")
    engine.fitted.update(fitted or {})
