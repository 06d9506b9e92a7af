"""Training extra (`pip install 'nextx[train]'`): reference GRPO trainer with NExt in the loop.

    from nextx.train import GRPORunConfig, NExtCallback, train

The names are imported on first use (PEP 562): `nextx.train.config` and `nextx.train.tasks` load
without transformers, so the CLI can list tasks and settings cheaply.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"NExtCallback": "nextx.train.callback", "GRPORunConfig": "nextx.train.config", "train": "nextx.train.grpo"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nextx.train' has no attribute {name!r}")
