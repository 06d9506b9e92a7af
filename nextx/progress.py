"""`progress_bars`: the one progress display of every long stage (the CLI's reads, fits and writes,
and training): rich bars on a terminal, periodic plain lines on stderr otherwise (logs and CI)."""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class PlainProgress:
    """Progress as plain stderr lines ("training next: 400/1000, 61 s") for logs and CI: nothing for
    stages shorter than ``every`` seconds (NEXTX_PROGRESS_EVERY, default 30), then a line that often."""

    def __init__(self, console: Console, description: str, total: int, every: float | None = None):
        if every is None:
            every = float(os.environ.get("NEXTX_PROGRESS_EVERY") or 30)
        self.console, self.description, self.total, self.every, self.done = console, description, total, every, 0
        self.start = self.last = time.monotonic()

    def advance(self, _label=None) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.console.print(f"{self.description}: {self.done}/{self.total}, {now - self.start:.0f} s", markup=False)


@contextlib.contextmanager
def progress_bars(console: Console, *stages: tuple[str, int]) -> Iterator[list]:
    """One progress line per (description, total) stage — rich bars on a terminal, periodic plain lines
    otherwise; yields one advance(label) per stage."""
    if not console.is_terminal:
        yield [PlainProgress(console, description, total).advance for description, total in stages]
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        tasks = [progress.add_task(description, total=total) for description, total in stages]
        yield [functools.partial(_advance, progress, task) for task in tasks]


def _advance(progress: Progress, task, _label=None) -> None:
    progress.advance(task)
