"""Plain PEFT adapters of the true weights of checkpoints that carry base offsets.

A checkpoint written after an offset jump holds W₀ + L·R + s·B·A: PEFT (vLLM, a Hub user, an eval
script) loads only s·B·A and silently misses L·R. `export_plain_adapter` writes W − W₀ as one
adapter of rank r + k (`extrapolate --method stay --ahead 0`), and `mark_offset_checkpoint` says so
where a plain loader's user looks: the checkpoint's README (model card) and a note beside
``adapter_config.json``.
"""

from __future__ import annotations

import re
from pathlib import Path

from nextx.extrapolation import extrapolate
from nextx.io.offsets import OFFSET_FILE
from nextx.io.run import Run, load_run
from nextx.predictors import make_predictor

NOTE_FILE = "NEXTX-BASE-OFFSET.md"
NOTE = (f"# Not a plain PEFT adapter\n\nThis checkpoint's weights are W0 + offset + s*B*A: nextx folded in-loop "
        f"jumps into the frozen base, and `{OFFSET_FILE}` holds that offset. PEFT, vLLM and other plain "
        "loaders read only s*B*A and miss it. Every nextx command reads it; for any other loader write a plain "
        "adapter of the true weights first:\n\n    nextx export {path} -o {plain}\n")


def plain_adapter(run: Run, out: Path, *, force: bool = False, within_run: bool = False) -> Path:
    """W − W₀ of the run's last checkpoint (offsets included) as a plain PEFT adapter in ``out``."""
    stay = extrapolate(run, make_predictor("stay").fit(None, run.steps), ahead=0.0)
    return stay.save_adapter(out, force=force, within_run=within_run)


def export_plain_adapter(run_dir: Path, out: Path) -> Path:
    """The trainer's own export at train end: ``out`` (inside ``run_dir``) replaced by the last
    checkpoint's true weights as a plain adapter."""
    return plain_adapter(load_run(run_dir, layout="trl"), out, force=True, within_run=True)


def checkpoint_run(checkpoint: Path) -> Run:
    """One checkpoint directory as a run of one step (its ``checkpoint-N`` number, else 0)."""
    match = re.search(r"(\d+)$", checkpoint.name)
    return load_run(None, checkpoints=[(int(match[1]) if match else 0, checkpoint)])


def mark_offset_checkpoint(checkpoint: Path) -> None:
    """Say in the checkpoint's README and beside its adapter_config.json that PEFT alone misses its offset."""
    plain = checkpoint.parent.with_name(f"{checkpoint.parent.name}-{checkpoint.name}-plain")
    note = NOTE.format(path=checkpoint, plain=plain)
    (checkpoint / NOTE_FILE).write_text(note)
    readme = checkpoint / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    if NOTE_FILE not in text:
        readme.write_text(f"> **Not a plain PEFT adapter** — see {NOTE_FILE}: load it with nextx, or run "
                          f"`nextx export {checkpoint} -o {plain}`.\n\n" + text)
