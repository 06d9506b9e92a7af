"""Training extra (`pip install 'nextx[train]'`): reference GRPO trainer with NExt in the loop.

    from nextx.train import GRPORunConfig, NExtCallback, train
    from nextx.train import train_dgo       # DGO: GRPORunConfig(algo="dgo", ...)

The names are imported on first use (PEP 562): `nextx.train.config` and `nextx.train.tasks` load
without transformers, so the CLI can list tasks and settings cheaply.
"""

from __future__ import annotations

from nextx._lazy import lazy_exports

_EXPORTS = {"NExtCallback": "nextx.train.callback", "GRPORunConfig": "nextx.train.config", "train": "nextx.train.grpo",
            "train_dgo": "nextx.train.dgo.loop", "ExperienceBank": "nextx.train.dgo.bank"}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
