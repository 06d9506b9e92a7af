"""Errors nextx raises. The library raises them; the CLI prints one line and exits 1.

A message says what is wrong, where (``path``) and what to do next (``hint``):
``Error: no checkpoints found (runs/x). Tried layouts: trl, verl, ... Pass --checkpoint STEP=PATH.``
"""

from __future__ import annotations

from pathlib import Path


def first_line(err: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (at most ``limit`` characters), else "(no message)"."""
    lines = str(err).strip().splitlines()
    return lines[0][:limit] if lines else "(no message)"


class NextxError(Exception):
    """Base class: a problem with the user's input, not a bug in nextx."""

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        text = self.message
        if self.path:
            text += f" ({self.path})"
        text += "."
        if self.hint:
            text += f" {self.hint}"
        return text


class RunLayoutError(NextxError):
    """The run directory is empty, ambiguous or has no checkpoints nextx can read."""


class NoCheckpointsError(RunLayoutError):
    """The run directory is absent or empty, or holds no checkpoint folder at all (unlike one holding
    folders that cannot be read)."""


class CheckpointError(NextxError):
    """A checkpoint is corrupt, non-finite, or inconsistent with the others or the base."""


class UnsupportedAdapterError(NextxError):
    """An adapter nextx refuses to read: DoRA, lora_alpha 0, pickle without --allow-pickle."""


class PredictorError(NextxError):
    """A predictor cannot be fitted or applied (too few checkpoints, wrong run)."""


class OutputExistsError(NextxError):
    """The output path exists and --force was not given."""


class HubError(NextxError):
    """A Hugging Face Hub repository, revision or file cannot be reached."""


class DeviceError(NextxError):
    """A requested device (``--device``) is unknown or not available on this machine."""
