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

from nextx.errors import NextxError, first_line
from nextx.io.write import pid_alive


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
    hint = 'Return {"score": float, "per_item": [float, ...]} (per_item optional).'
    if not _is_number(value):  # "0.5", true: a hook's bug, not a score
        raise ScoreError(f"{source} returned a score that is not a number: {str(value)[:80]!r}", hint=hint)
    if per_item is not None and not (isinstance(per_item, list | tuple) and all(map(_is_number, per_item))):
        raise ScoreError(f"{source} returned per_item that is not a list of numbers: {str(per_item)[:80]!r}", hint=hint)
    mean = float(value)
    per_item = [float(v) for v in per_item] if per_item is not None else None
    if not math.isfinite(mean) or (per_item is not None and not all(map(math.isfinite, per_item))):
        raise ScoreError(f"{source} returned a non-finite score", hint="Scores must be finite numbers.")
    return Score(mean, per_item)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _AdapterScorer:
    """Writes each candidate as a PEFT adapter in a temporary directory and scores that path."""

    name = "adapter"

    def score(self, candidate) -> Score:
        import os

        remove_stale_candidates()
        with tempfile.TemporaryDirectory(prefix=f"nextx-candidate-{os.getpid()}-") as tmp:
            path = candidate.save_adapter(Path(tmp) / "adapter")
            return self.score_path(path)

    def score_path(self, path: Path) -> Score:
        raise NotImplementedError


def remove_stale_candidates() -> None:
    """Remove ``$TMPDIR/nextx-candidate-PID-*`` left by a nextx that was killed (its PID is gone)."""
    import shutil

    for folder in Path(tempfile.gettempdir()).glob("nextx-candidate-*-*"):
        pid = folder.name.removeprefix("nextx-candidate-").partition("-")[0]
        if pid.isdigit() and folder.is_dir() and not folder.is_symlink() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


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
        except Exception as err:  # noqa: BLE001 - the user's module failed to import (SyntaxError, …): not ours
            raise ScoreError(f"--eval {spec!r}: importing {module_name} raised {type(err).__name__}: "
                             f"{first_line(err, 200)}", hint="Fix the module (python -c 'import MODULE' shows it).") from None
        if not callable(self.function):
            raise ScoreError(f"--eval {spec!r}: {function_name} is not a function",
                             hint="Name a function taking the adapter's directory.")
        self.name = spec

    def score_path(self, path: Path) -> Score:
        try:
            value = self.function(str(path))
        except Exception as err:  # noqa: BLE001 - the user's evaluation failed: say so, not "a nextx bug"
            raise ScoreError(f"--eval {self.name} raised {type(err).__name__}: {first_line(err, 200)}",
                             hint="Fix the evaluation function (it gets the candidate adapter's directory).") from None
        return _score_from(value, f"--eval {self.name}")


class CommandScorer(_AdapterScorer):
    """A shell-free command with ``{path}`` for the adapter dir (also in ``$NEXTX_EVAL_PATH``: a template
    that calls a shell must use that, quoted, never ``{path}`` inside the shell's string); its stdout's
    last non-empty line is one JSON object with ``score`` (and optionally ``per_item``). Only the last
    64 KiB of its output are kept; on the timeout its whole process group is killed, and it dies with
    nextx."""

    def __init__(self, template: str, timeout: float = 3600.0):
        if "{path}" not in template:
            raise ScoreError(f"--eval-cmd {template!r} has no {{path}}",
                             hint="Example: --eval-cmd 'python my_eval.py {path}'")
        try:
            words = shlex.split(template)
        except ValueError as err:  # an unbalanced quote
            raise ScoreError(f"--eval-cmd {template!r} cannot be split into words: {err}",
                             hint="Balance its quotes, e.g. --eval-cmd 'python my_eval.py {path}'") from None
        if not words or words[0] == "{path}":
            raise ScoreError(f"--eval-cmd {template!r} names no command before {{path}}",
                             hint="Example: --eval-cmd 'python my_eval.py {path}'")
        self.template, self.timeout, self.name = template, timeout, template

    def score_path(self, path: Path) -> Score:
        argv = [part.replace("{path}", str(path)) for part in shlex.split(self.template)]
        source = f"--eval-cmd {self.template!r}"
        returncode, stdout, stderr = run_bounded(argv, {"NEXTX_EVAL_PATH": str(path)}, self.timeout, source)
        if returncode != 0:
            last = (stderr.strip().splitlines() or ["(no stderr)"])[-1][:200]
            raise ScoreError(f"{source} exited with code {returncode}: {last}")
        lines = [line for line in stdout.splitlines() if line.strip()]
        try:
            value = json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise ScoreError(f"{source} did not print a JSON object as its last line",
                             hint='Print e.g. {"score": 0.61, "per_item": [1, 0, ...]} on stdout.')
        return _score_from(value, source)


TAIL_BYTES = 64 * 1024  # of an evaluation command's output, only its last line is used


def run_bounded(argv: list[str], env: dict, timeout: float, source: str) -> tuple[int, str, str]:
    """(return code, stdout's tail, stderr's tail) of a command in its own process group, killed whole
    on the timeout or with nextx (Linux: parent-death signal); output spooled to disk, not memory."""
    import os
    import signal

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            child = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
                                     env={**os.environ, **env}, preexec_fn=_die_with_parent)
        except FileNotFoundError:
            raise ScoreError(f"{source}: command not found: {argv[0]}") from None
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            raise ScoreError(f"{source} timed out after {timeout:g} s",
                             hint="Speed up the evaluation or raise --eval-timeout.") from None
        finally:
            if child.poll() is None:  # interrupted (Ctrl-C): the evaluation goes with us
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        return child.returncode, _tail(out), _tail(err)


def _tail(handle) -> str:
    size = handle.seek(0, 2)
    handle.seek(max(0, size - TAIL_BYTES))
    return handle.read().decode("utf-8", "replace")


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when nextx dies (prctl PR_SET_PDEATHSIG, Linux only)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
