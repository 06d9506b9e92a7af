"""`nextx fit` and `nextx backtest`: fit a predictor; score every method on held-out checkpoints."""

from __future__ import annotations

import contextlib
import functools

import click
from rich.table import Table

from nextx.backtesting import DEFAULT_METHODS, backtest, check_methods
from nextx.cli.common import (
    console,
    emit_json,
    eval_options,
    make_scorer,
    param_callback,
    param_metavar,
    progress_bar,
    progress_bars,
    run_options,
)
from nextx.fitting import fit, method_trajectories, save_predictor
from nextx.predictors import DEFAULT_METHOD, REGISTRY, Predictor, with_seed
from nextx.trajectory import DEFAULT_HORIZON, Trajectories

METHOD_CHOICE = click.Choice(sorted(REGISTRY))


def fit_with_progress(run, method: str, horizon: int, hparams: dict,
                      traj: Trajectories | None = None) -> tuple[Predictor, Trajectories | None]:
    """`fit` with progress bars: the rank-1 trajectories (unless given; returned too, for reuse by
    `extrapolate`), then the training epochs of methods that train."""
    if REGISTRY[method].needs_trajectories and traj is None:
        with progress_bar("rank-1 trajectories", len(run.modules)) as advance:
            traj = method_trajectories(run, method, horizon, hparams, advance)
    epochs = REGISTRY[method].planned_epochs(hparams)
    if not epochs:  # nothing to train
        return fit(run, method, horizon=horizon, traj=traj, **hparams), traj
    with progress_bar(f"training {method}", epochs) as advance:
        return fit(run, method, horizon=horizon, traj=traj, epoch_progress=advance, **hparams), traj


def method_options(func):
    """Every method's declared settings that have a CLI flag (`nextx.predictors.Param`), passed on as
    ``hparams`` = {method: {name: value}} (only the flags given; the methods keep their defaults)."""
    declared = [(method, p) for method, cls in REGISTRY.items() for p in cls.params if p.option]

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        hparams = {method: {} for method in REGISTRY}
        for method, p in declared:
            value = kwargs.pop(_dest(p))
            if value is not None:
                hparams[method][p.name] = value
        return func(*args, hparams=hparams, **kwargs)

    for _method, p in reversed(declared):
        wrapper = click.option(p.option, _dest(p), default=None, callback=param_callback(p), metavar=param_metavar(p),
                               help=f"{p.help} [default: {p.default}]")(wrapper)
    return wrapper


def _dest(param) -> str:
    return "hp_" + param.option.lstrip("-").replace("-", "_")


@contextlib.contextmanager
def backtest_progress(run, methods, hparams: dict):
    """Progress stages of a backtest — trajectories (if a method needs them), each training method's
    epochs, the scoring — as the keyword arguments `nextx.backtest` takes."""
    epochs = {m: REGISTRY[m].planned_epochs(hparams.get(m, {})) for m in methods}
    stages = [("rank-1 trajectories", len(run.modules))] if any(REGISTRY[m].needs_trajectories for m in methods) else []
    stages += [(f"training {m}", e) for m, e in epochs.items() if e] + [("scoring", len(run.modules))]
    with progress_bars(*stages) as advances:
        ticks = dict(zip([stage for stage, _ in stages], advances, strict=True))
        yield {"progress": ticks.get("rank-1 trajectories"), "module_progress": ticks["scoring"],
               "epoch_progress": {m: ticks[f"training {m}"] for m, e in epochs.items() if e}}


def horizon_option(func):
    return click.option("--horizon", type=click.IntRange(min=1), default=DEFAULT_HORIZON, show_default=True,
                        help="Target delta W_{t+h} − W_t, h in checkpoints.")(func)


@click.command("fit")
@run_options
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="Predictor directory to write.")
@click.option("--method", type=METHOD_CHOICE, default=DEFAULT_METHOD, show_default=True)
@horizon_option
@click.option("--seed", type=int, default=0, show_default=True)
@method_options
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def fit_cmd(open_run, out, method, horizon, seed, hparams, force, as_json):
    """Fit a predictor on every checkpoint of RUN and save it (safetensors + JSON).

    \b
    Examples:
      nextx fit runs/grpo -o runs/grpo-predictor
      nextx fit runs/grpo -o pred --horizon 3 --group-by type --json
    """
    run = open_run()
    predictor, _ = fit_with_progress(run, method, horizon, with_seed(hparams, seed)[method])
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
@method_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write error per held-out step to a PNG.")
@eval_options
def backtest_cmd(open_run, holdout, methods, horizon, seed, hparams, as_json, plot, eval_task, eval_function,
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
        from nextx.studies.plot import check_new

        check_new(plot)
    scorer = make_scorer(run, eval_task, eval_function, eval_cmd, eval_timeout, eval_size)
    check_methods(names)
    hparams = with_seed(hparams, seed)
    with backtest_progress(run, names, hparams) as progress:
        report = backtest(run, names, holdout=holdout, horizon=horizon, seed=seed, hparams=hparams, scorer=scorer,
                          **progress)
    if plot:
        from nextx.studies.plot import plot_backtest

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
    if report["best"] != DEFAULT_METHOD and DEFAULT_METHOD in report["methods"]:
        console.print(f"NExt does not win on this run: {report['best']} predicts the held-out checkpoints better.")
