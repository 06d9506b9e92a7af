"""`nextx fit` and `nextx backtest`: fit a predictor; score every method on held-out checkpoints."""

from __future__ import annotations

import functools

import click
from rich.table import Table

from nextx.backtesting import DEFAULT_METHODS, backtest
from nextx.cli.common import console, emit_json, eval_options, make_scorer, progress_bar, run_options
from nextx.fitting import fit, save_predictor
from nextx.predictors import REGISTRY, Predictor
from nextx.predictors.next import AUTO_EPOCHS_MAX
from nextx.predictors.next import DEFAULTS as NEXT_DEFAULTS
from nextx.trajectory import Trajectories, trajectories

METHOD_CHOICE = click.Choice(sorted(REGISTRY))


def fit_with_progress(run, method: str, horizon: int, hparams: dict,
                      traj: Trajectories | None = None) -> tuple[Predictor, Trajectories | None]:
    """`fit` with progress bars: the rank-1 trajectories (unless given; returned too, for reuse by
    `extrapolate`), then NExt's training epochs."""
    if REGISTRY[method].needs_trajectories and traj is None:
        with progress_bar("rank-1 trajectories", len(run.modules)) as advance:
            traj = trajectories(run, horizon=horizon, progress=advance)
    if method != "next":  # nothing to train
        return fit(run, method, horizon=horizon, traj=traj, **hparams), traj
    epochs = hparams.get("epochs", NEXT_DEFAULTS["epochs"])
    with progress_bar(f"training {method}", AUTO_EPOCHS_MAX if epochs == "auto" else epochs) as advance:
        return fit(run, method, horizon=horizon, traj=traj, epoch_progress=advance, **hparams), traj


def _epochs(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        epochs = int(value)
    except ValueError:
        epochs = 0
    if epochs < 1:
        raise click.BadParameter(f"{value!r} is neither a positive integer nor 'auto'", param_hint="--epochs")
    return epochs


def next_options(func):
    """NExt's settings (--next-lr, --epochs, --group-by, --device), passed on as ``next_hparams``."""
    @click.option("--next-lr", type=click.FloatRange(min=0, min_open=True), default=None,
                  help="NExt learning rate (default 2e-5, the paper's; ~3e-4 suits vectors shorter than ~1k).")
    @click.option("--epochs", default="1000", show_default=True,
                  help="NExt training epochs, or auto (stop once 50 epochs improve the loss by < 0.1%, ≤ 1000).")
    @click.option("--group-by", type=click.Choice(["length", "type"]), default="length", show_default=True,
                  help="NExt: one predictor per vector length (paper) or per module type.")
    @click.option("--device", default="cpu", show_default=True, help="Where NExt trains: auto, cpu, cuda[:N], mps.")
    @functools.wraps(func)
    def wrapper(*args, next_lr, epochs, group_by, device, **kwargs):
        hparams = {"epochs": _epochs(epochs), "group_by": group_by, "device": device}
        if next_lr is not None:
            hparams["lr"] = next_lr
        return func(*args, next_hparams=hparams, **kwargs)

    return wrapper


def horizon_option(func):
    return click.option("--horizon", type=click.IntRange(min=1), default=5, show_default=True,
                        help="Target delta W_{t+h} − W_t, h in checkpoints.")(func)


@click.command("fit")
@run_options
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="Predictor directory to write.")
@click.option("--method", type=METHOD_CHOICE, default="next", show_default=True)
@horizon_option
@click.option("--seed", type=int, default=0, show_default=True)
@next_options
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def fit_cmd(open_run, out, method, horizon, seed, next_hparams, force, as_json):
    """Fit a predictor on every checkpoint of RUN and save it (safetensors + JSON).

    \b
    Examples:
      nextx fit runs/grpo -o runs/grpo-predictor
      nextx fit runs/grpo -o pred --horizon 3 --group-by type --json
    """
    run = open_run()
    hparams = {"seed": seed, **next_hparams} if REGISTRY[method].needs_trajectories else {}
    predictor, _ = fit_with_progress(run, method, horizon, hparams)
    path = save_predictor(predictor, out, force=force)
    info = predictor.fit_info
    summary = {"predictor": str(path), "method": method, "horizon": horizon, "steps": run.steps,
               "fit_seconds": info.get("fit_seconds"), "final_loss": info.get("final_loss"),
               "groups": info.get("groups")}
    if as_json:
        emit_json(summary)
        return
    if info.get("fit_seconds") is not None:
        console.print(f"fitted {method} on {info['pairs']} pairs × {len(run.modules)} modules in "
                      f"{info['fit_seconds']:.1f} s ({len(info['groups'])} groups)")
    click.echo(str(path))


@click.command("backtest")
@run_options
@click.option("--holdout", type=click.IntRange(min=1), default=3, show_default=True,
              help="Number of final checkpoints to hold out.")
@click.option("--methods", default=",".join(DEFAULT_METHODS), show_default=True, help="Comma-separated methods.")
@horizon_option
@click.option("--seed", type=int, default=0, show_default=True)
@next_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write error per held-out step to a PNG.")
@eval_options
def backtest_cmd(open_run, holdout, methods, horizon, seed, next_hparams, as_json, plot, eval_task, eval_function,
                 eval_cmd, eval_timeout, eval_size):
    """Fit every method on RUN minus its last K checkpoints and score the predictions of them.

    \b
    Examples:
      nextx backtest runs/grpo --holdout 3
      nextx backtest runs/grpo --holdout 2 --horizon 3 --json
      nextx backtest runs/grpo --eval-task addition --base BASE   # adds each prediction's task reward
    """
    run = open_run()
    names = [m.strip() for m in methods.split(",") if m.strip()]
    if not names:
        raise click.BadParameter("name at least one method (e.g. next,linear,stay)", param_hint="--methods")
    if plot:
        from nextx.plot import check_new

        check_new(plot)
    scorer = make_scorer(run, eval_task, eval_function, eval_cmd, eval_timeout, eval_size)
    with progress_bar("backtest", len(run.modules)) as advance:
        report = backtest(run, names, holdout=holdout, horizon=horizon, seed=seed,
                          hparams={"next": next_hparams}, progress=advance, scorer=scorer)
    if plot:
        from nextx.plot import plot_backtest

        plot_backtest(report.to_dict(), plot)
    if as_json:
        emit_json(report.to_dict())
        return
    render_backtest(report.to_dict())


def _sort_key(value) -> float:
    return value if value is not None and value == value else float("inf")


def render_backtest(report: dict) -> None:
    table = Table(title=f"backtest: fit on steps {report['fit_steps'][0]}–{report['fit_steps'][-1]}, "
                        f"predict {', '.join(map(str, report['holdout_steps']))}", title_justify="left")
    for column in ("method", "rel. error", "gain over stay", "cosine", "best α scale"):
        table.add_column(column, justify="left" if column == "method" else "right")
    reward = report.get("reward")
    if reward:
        table.add_column(f"reward at step {reward['step']} (Δ vs stay ± SE)", justify="right")
    for name, m in sorted(report["methods"].items(), key=lambda kv: _sort_key(kv[1]["rel_error"])):
        label = f"[bold]{name}[/] (best)" if name == report["best"] else name
        cells = [f"{m['rel_error']:.4f}", f"{m['gain_over_stay']:+.1%}", f"{m['cosine']:.3f}", f"{m['coef_scale']:.2f}"]
        if reward:
            r = reward["methods"][name]
            se = "" if r["se"] is None else f" ± {r['se']:.3f}"
            cells.append(f"{r['score']:.3f} ({r['delta_vs_stay']:+.3f}{se})")
        table.add_row(label, *cells)
    console.print(table)
    if reward:
        console.print(f"reward ({reward['scorer']}): stay (step {reward['from_step']}) {reward['stay']:.3f}, "
                      f"the real checkpoint {reward['actual']:.3f}.")
    else:
        console.print("best = lowest weight-space error, which need not mean highest task reward "
                      "(add --eval-task / --eval / --eval-cmd for a reward column).")
    if report["best"] != "next" and "next" in report["methods"]:
        console.print(f"NExt does not win on this run: {report['best']} predicts the held-out checkpoints better.")
