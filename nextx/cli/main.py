"""`nextx`: the command group, error handling and exit codes.

Exit codes: 0 ok; 1 a NextxError (bad input: one line on stderr); 2 usage; 3 an unexpected bug
(rerun with --debug for the traceback); 130 interrupted. Tracebacks only with --debug or NEXTX_DEBUG=1.
"""

from __future__ import annotations

import os

import click

from nextx._version import __version__
from nextx.cli.common import console, safe_text
from nextx.errors import NextxError


class NextxGroup(click.Group):
    """Turns library errors into one clear line and an exit code."""

    def invoke(self, ctx: click.Context):
        debug = bool(ctx.params.get("debug")) or os.environ.get("NEXTX_DEBUG") == "1"
        try:
            return super().invoke(ctx)
        except NextxError as err:
            if debug:
                raise
            console.print(f"[bold red]Error:[/] {safe_text(err.format())}", markup=True, soft_wrap=True, highlight=False)
            ctx.exit(1)
        except KeyboardInterrupt:
            if ctx.invoked_subcommand == "train":  # a run's checkpoints are its output as it goes
                console.print("Interrupted; the checkpoints saved so far are kept (nextx train --resume continues a "
                              "run trained with --save-state).")
            else:
                console.print("Interrupted; no partial output was left behind.")
            ctx.exit(130)
        except BrokenPipeError:  # stdout closed early (`nextx … | head`): not an error of ours
            _silence_stdout()
            ctx.exit(0)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as err:  # noqa: BLE001 - last resort: a bug, reported without a traceback
            if debug:
                raise
            console.print(f"[bold red]Error:[/] unexpected {type(err).__name__}: {safe_text(str(err))}. Rerun with --debug for the "
                          "traceback and report it.", markup=True, soft_wrap=True, highlight=False)
            ctx.exit(3)


@click.group(cls=NextxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nextx")
@click.option("--debug", is_flag=True, help="Show tracebacks (also NEXTX_DEBUG=1).")
def cli(debug: bool) -> None:
    """nextx: predict where an RLVR LoRA run is going, and write weights a trainer resumes from.

    \b
    Examples:
      nextx inspect runs/grpo
      nextx backtest runs/grpo --holdout 3
      nextx extrapolate runs/grpo -o runs/grpo-next --ahead 50
    """


def _silence_stdout() -> None:
    """Point stdout at /dev/null so Python's exit-time flush does not raise again."""
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _register() -> None:
    from nextx.cli.demo import demo_cmd
    from nextx.cli.dgo import dgo_group
    from nextx.cli.export import export_cmd
    from nextx.cli.extrapolate import extrapolate_cmd
    from nextx.cli.fit import backtest_cmd, fit_cmd
    from nextx.cli.hub import pull_cmd
    from nextx.cli.inspect import inspect
    from nextx.cli.llm import fetch_llm_cmd
    from nextx.cli.train import eval_cmd, train_cmd

    for command in (inspect, fit_cmd, backtest_cmd, extrapolate_cmd, export_cmd, pull_cmd, train_cmd, eval_cmd,
                    demo_cmd, dgo_group, fetch_llm_cmd):
        cli.add_command(command)


_register()


def _interrupt(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line on the stderr console ("Warning: …"), never nextx's source path."""
    console.print(f"[yellow]Warning:[/] {safe_text(str(message))}", markup=True, soft_wrap=True, highlight=False)


def main() -> None:
    import signal
    import warnings

    warnings.showwarning = _warning_line
    for name in ("SIGTERM", "SIGHUP"):  # like Ctrl-C: outputs in progress are removed, exit 130
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _interrupt)
    cli(prog_name="nextx")


if __name__ == "__main__":  # python -m nextx.cli.main … (e.g. under accelerate launch)
    main()
