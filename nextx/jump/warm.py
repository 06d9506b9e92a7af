"""The warm fits of a run that jumps with ``warm`` (each fit starts from the last one's), kept in
every checkpoint as the engine held them at that save — before a jump due there — so a run resumed
from ``checkpoint-N`` fits its next jump from the same start as the uninterrupted run:

    CHECKPOINT/nextx-warm/METHOD/   predictor.json + predictor.safetensors (`nextx.fitting.save_predictor`)
"""

from __future__ import annotations

from pathlib import Path

from nextx.fitting import load_predictor, save_predictor
from nextx.predictors import Predictor

WARM_DIR = "nextx-warm"


def save_warm(checkpoint: Path, fitted: dict[str, Predictor]) -> None:
    """Write each method's last fit under ``checkpoint/nextx-warm/`` (atomically, one folder per method;
    the folder alone when nothing was fitted yet)."""
    (Path(checkpoint) / WARM_DIR).mkdir(parents=True, exist_ok=True)
    for method, predictor in fitted.items():
        save_predictor(predictor, Path(checkpoint) / WARM_DIR / method, force=True)


def load_warm(checkpoint: Path) -> dict[str, Predictor] | None:
    """The fits `save_warm` wrote into ``checkpoint`` ({} when it wrote none because nothing was
    fitted yet), or None for a checkpoint written without them (an older nextx)."""
    folder = Path(checkpoint) / WARM_DIR
    if not folder.is_dir():
        return None
    return {sub.name: load_predictor(sub) for sub in sorted(folder.iterdir()) if sub.is_dir()}
