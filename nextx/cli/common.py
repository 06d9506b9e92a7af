"""What every command shares: the stderr console, run options, JSON output, progress."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import click
from rich.console import Console

from nextx._version import __version__
from nextx.errors import PredictorError
from nextx.io.discover import LAYOUT_NAMES, parse_checkpoint_args
from nextx.io.run import Run, load_run
from nextx.io.write import dumps_json
from nextx.progress import progress_bars as stage_bars

console = Console(stderr=True, highlight=False, emoji=False)  # a path's ":x:" stays ":x:"


def safe_text(text: str) -> str:
    """User or model text for the terminal: rich markup escaped, control characters (escape sequences
    that clear the screen or set a window title) shown as ``\\xNN`` instead of sent raw."""
    from rich.markup import escape

    shown = "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return escape(shown)


def run_options(func):
    """RUN plus the options that say how to read it (shared by inspect, fit, backtest, extrapolate)."""

    @click.argument("run", required=False)
    @click.option("--layout", type=click.Choice(["auto", *LAYOUT_NAMES]), default="auto", show_default=True,
                  help="Checkpoint layout of RUN.")
    @click.option("--checkpoint", "checkpoint_args", multiple=True, metavar="STEP=PATH",
                  help="An explicit checkpoint (repeat); replaces layout discovery.")
    @click.option("--base", type=click.Path(), default=None,
                  help="Base model W₀: a dir, a Hub id or hf://OWNER/REPO[@REV] (default: the adapter's "
                       "base_model_name_or_path). Needed for full-weight runs and merged outputs.")
    @click.option("--lora-alpha", type=float, default=None, callback=lambda c, p, v: _positive(v, "lora_alpha"),
                  help="Override lora_alpha (verl's merger writes 0).")
    @click.option("--allow-pickle", is_flag=True, help="Read .bin/.pt adapters with torch.load(weights_only=True).")
    @functools.wraps(func)
    def wrapper(run, layout, checkpoint_args, base, lora_alpha, allow_pickle, **kwargs):
        def open_run() -> Run:
            if run is None and not checkpoint_args:
                raise click.UsageError("give a RUN directory or --checkpoint STEP=PATH")
            if run is not None and checkpoint_args:  # RUN would be ignored, yet named as the source
                raise click.UsageError("give a RUN directory or --checkpoint STEP=PATH, not both")
            return load_run(
                run, layout=layout, base=base, lora_alpha=lora_alpha,
                checkpoints=parse_checkpoint_args(list(checkpoint_args)) or None, allow_pickle=allow_pickle,
            )

        return func(open_run=open_run, **kwargs)

    return wrapper


def number_or_auto(value: str | None, option: str) -> float | str | None:
    """An option's value as a float, or "auto" / None as given; a usage error otherwise."""
    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a number nor 'auto'", param_hint=option) from None


def emit_json(payload: dict) -> None:
    """One JSON object on stdout, with the nextx version."""
    click.echo(dumps_json({"nextx_version": __version__, **payload}, indent=None))


@contextlib.contextmanager
def progress_bars(*stages: tuple[str, int]) -> Iterator[list]:
    """`nextx.progress.progress_bars` on the CLI's stderr console."""
    with stage_bars(console, *stages) as advances:
        yield advances


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator:
    """`progress_bars` with one stage; yields its advance(label)."""
    with progress_bars((description, total)) as (advance,):
        yield advance


def eval_options(func):
    """--eval-task / --eval / --eval-cmd and their settings (shared by extrapolate and backtest)."""
    options = [
        click.option("--eval-task", default=None, help="Score with a built-in task's verifier (validation prompts)."),
        click.option("--eval", "eval_function", default=None, metavar="MODULE:FUNCTION",
                     help="Score with your function(adapter_dir) → score | {score, per_item}."),
        click.option("--eval-cmd", default=None, metavar="'CMD {path}'",
                     help="Score with your command; it prints one JSON object with score (and per_item)."),
        click.option("--eval-timeout", type=float, callback=_seconds, default=3600, show_default=True,
                     help="Seconds per --eval-cmd call."),
        click.option("--eval-size", type=click.IntRange(min=10), default=500, show_default=True,
                     help="Validation prompts for --eval-task."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _positive(value: float | None, name: str) -> float | None:
    """None, or a positive finite number (a 0, nan or inf alpha is the option's fault, not the adapter's)."""
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"{value!r} is not a positive {name}")
    return value


def _seconds(ctx, param, value: float) -> float:
    """A finite number of seconds ≥ 1 (nan and inf are floats too)."""
    import math

    if value is None or not math.isfinite(value) or value < 1:
        raise click.BadParameter(f"{value!r} is not a number of seconds ≥ 1")
    return value


def make_scorer(run, eval_task, eval_function, eval_cmd, eval_timeout, eval_size, base=None):
    """The evaluation hook the options name (None if none); built before any expensive work."""
    given = [x for x in (eval_task, eval_function, eval_cmd) if x]
    if len(given) > 1:
        raise click.UsageError("give one of --eval-task, --eval and --eval-cmd")
    if eval_function:
        from nextx.scoring import FunctionScorer

        return FunctionScorer(eval_function)
    if eval_cmd:
        from nextx.scoring import CommandScorer

        return CommandScorer(eval_cmd, eval_timeout)
    if eval_task:
        from nextx.cli.train import require_train_extra

        require_train_extra()
        from nextx.train.scorer import TaskScorer
        from nextx.train.tasks import get_task

        base = base or run.base_model_path()
        if base is None:
            raise PredictorError("--eval-task needs the run's base model", hint="Pass --base PATH or a Hub id.")
        task = get_task(eval_task)
        return TaskScorer(task, base, task.validation_split(eval_size))
    return None


def param_callback(param):
    """A click callback parsing an option's text with a predictor's `Param` (BadParameter with its reason)."""
    def callback(ctx, option, text):
        if text is None:
            return None
        try:
            return param.from_text(text)
        except ValueError as err:
            raise click.BadParameter(str(err)) from None
    return callback


def param_metavar(param) -> str:
    """The placeholder a `Param`'s option shows: its choices, its metavar, or its default's type."""
    return "[" + "|".join(param.choices) + "]" if param.choices else param.metavar or type(param.default).__name__.upper()
