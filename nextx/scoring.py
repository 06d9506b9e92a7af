"""Evaluation hooks: score a candidate model on the task, so jumps are chosen by reward.

A scorer maps a candidate (an `Extrapolation`: the run's last checkpoint moved by a method, or not
moved at all for "stay") to a `Score` — a mean and, when available, one value per evaluation item,
always the same items in the same order, so two candidates can be compared *paired*:

    d_i = x_i − y_i,   Δ = mean(d),   SE(Δ) = sd(d) / √n

Three kinds: the embedded tasks' verifier (`nextx.train.scorer.TaskScorer`, scores from memory),
a user's Python function (``package.module:function``, called with an adapter directory) and a
user's command (``'python my_eval.py {path}'``, printing one JSON object with ``score`` and
optionally ``per_item``). The last two get each candidate written as a PEFT adapter in a temporary
directory, removed afterwards.
"""

from __future__ import annotations

import importlib
import json
import math
import shlex
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nextx.errors import NextxError


class ScoreError(NextxError):
    """An evaluation hook failed or answered something that is not a score."""


@dataclass
class Score:
    mean: float
    per_item: list[float] | None = None


def paired_difference(x: Score, y: Score) -> tuple[float, float | None]:
    """(mean of x − y, its paired standard error; None without per-item scores on both)."""
    delta = x.mean - y.mean
    if not x.per_item or not y.per_item:
        return delta, None
    if len(x.per_item) != len(y.per_item):
        raise ScoreError(f"paired scores need the same items: {len(x.per_item)} vs {len(y.per_item)} per-item scores",
                         hint="The evaluation must score the same items, in the same order, every time.")
    d = [a - b for a, b in zip(x.per_item, y.per_item, strict=True)]
    se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else None
    return statistics.fmean(d), se


class Scorer(Protocol):
    """Anything with ``score(candidate) -> Score`` and a ``name`` for tables and provenance."""

    name: str

    def score(self, candidate) -> Score: ...


def _score_from(value, source: str) -> Score:
    """A Score from what a hook returned: a number, (mean, per_item), or {"score", "per_item"}."""
    per_item = None
    if isinstance(value, dict):
        if "score" not in value:
            raise ScoreError(f"{source} returned an object without \"score\"",
                             hint='Return {"score": float, "per_item": [float, ...]} (per_item optional).')
        value, per_item = value["score"], value.get("per_item")
    elif isinstance(value, tuple | list) and len(value) == 2:
        value, per_item = value
    try:
        mean = float(value)
        per_item = [float(v) for v in per_item] if per_item is not None else None
    except (TypeError, ValueError):
        raise ScoreError(f"{source} returned a score that is not a number: {str(value)[:80]!r}",
                         hint='Return {"score": float, "per_item": [float, ...]} (per_item optional).') from None
    if not math.isfinite(mean) or (per_item is not None and not all(map(math.isfinite, per_item))):
        raise ScoreError(f"{source} returned a non-finite score", hint="Scores must be finite numbers.")
    return Score(mean, per_item)


class _AdapterScorer:
    """Writes each candidate as a PEFT adapter in a temporary directory and scores that path."""

    name = "adapter"

    def score(self, candidate) -> Score:
        with tempfile.TemporaryDirectory(prefix="nextx-candidate-") as tmp:
            path = candidate.save_adapter(Path(tmp) / "adapter")
            return self.score_path(path)

    def score_path(self, path: Path) -> Score:
        raise NotImplementedError


class FunctionScorer(_AdapterScorer):
    """``package.module:function``, called as function(adapter_dir) → number | (mean, per_item) | dict."""

    def __init__(self, spec: str):
        module_name, _, function_name = spec.partition(":")
        if not module_name or not function_name:
            raise ScoreError(f"--eval {spec!r} is not of the form package.module:function",
                             hint="Example: --eval my_evals.math:score")
        try:
            self.function = getattr(importlib.import_module(module_name), function_name)
        except ImportError as err:
            raise ScoreError(f"--eval {spec!r}: cannot import {module_name} ({err})",
                             hint="Install the module or put it on PYTHONPATH.") from None
        except AttributeError:
            raise ScoreError(f"--eval {spec!r}: {module_name} has no {function_name}") from None
        self.name = spec

    def score_path(self, path: Path) -> Score:
        return _score_from(self.function(str(path)), f"--eval {self.name}")


class CommandScorer(_AdapterScorer):
    """A shell-free command with ``{path}`` for the adapter dir; its stdout's last non-empty line is
    one JSON object with ``score`` (and optionally ``per_item``)."""

    def __init__(self, template: str, timeout: float = 3600.0):
        if "{path}" not in template:
            raise ScoreError(f"--eval-cmd {template!r} has no {{path}}",
                             hint="Example: --eval-cmd 'python my_eval.py {path}'")
        self.template, self.timeout, self.name = template, timeout, template

    def score_path(self, path: Path) -> Score:
        argv = [part.replace("{path}", str(path)) for part in shlex.split(self.template)]
        source = f"--eval-cmd {self.template!r}"
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise ScoreError(f"{source}: command not found: {argv[0]}") from None
        except subprocess.TimeoutExpired:
            raise ScoreError(f"{source} timed out after {self.timeout:g} s",
                             hint="Speed up the evaluation or raise --eval-timeout.") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1][:200]
            raise ScoreError(f"{source} exited with code {done.returncode}: {last}")
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        try:
            value = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise ScoreError(f"{source} did not print a JSON object as its last line",
                             hint='Print e.g. {"score": 0.61, "per_item": [1, 0, ...]} on stdout.')
        return _score_from(value, source)
