"""`nextx demo`: vanilla GRPO vs the default jump arm (or GRPO vs DGO) on the embedded tiny model,
paired seeds in parallel, steps saved with a 95% interval (`nextx.studies.demo`)."""

from __future__ import annotations

from pathlib import Path

import click

from nextx.cli.common import console, emit_json
from nextx.cli.train import TASK_NAMES, log_line, require_train_extra
from nextx.studies.arms import ARMS, DEMO_ARMS, DEMO_SEEDS, arm_settings


@click.command("demo")
@click.option("-o", "--output", "out", default="nextx-demo", show_default=True, type=click.Path())
@click.option("--task", type=click.Choice(TASK_NAMES), default="addition", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="GRPO steps per run (default 400).")
@click.option("--seeds", default=",".join(map(str, DEMO_SEEDS)), show_default=True,
              help="Comma-separated seeds (≥ 5 for a claim).")
@click.option("--arms", default=",".join(DEMO_ARMS), show_default=True,
              help="Comma-separated jump arms: " + ", ".join(ARMS) + " (-offset: exact jump into the base); "
                   "NAME:KEY=VALUE:... overrides an arm's jump settings, e.g. trend-every:ahead=50:cap=2.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Seeds trained at a time, each in its own process with one thread [default: the free cores].")
@click.option("--algo", type=click.Choice(["grpo", "dgo"]), default="grpo", show_default=True,
              help="dgo: GRPO vs DGO (3 iterations of --steps, default 100) instead of jump arms.")
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json on stdout.")
def demo_cmd(out, task, steps, seeds, arms, jobs, algo, force, as_json):
    """Vanilla GRPO vs GRPO with a jump on the embedded tiny model: steps saved, with a 95% interval.

    Every arm is paired with a vanilla run of the same seed (identical up to the jump); accuracy is
    exact on the task's whole test population. Two seeds by default (~10 minutes on 2 cores): the
    interval is wide; bench/steps_saved.py runs five.

    \b
    Examples:
      nextx demo
      nextx demo -o demo-out --seeds 0,1,2,3,4 --arms next,reward --json
      nextx demo -o demo-dgo --algo dgo --seeds 0,1,2,3,4
    """
    require_train_extra()
    from dataclasses import replace

    from nextx.io.write import atomic_output_dir
    from nextx.studies.demo import DemoConfig, run_demo

    seed_list = _int_list(seeds, "--seeds")
    if algo == "dgo":
        _demo_dgo(out, DemoConfig(task=task), steps, tuple(seed_list), force, as_json)
        return
    arm_list = tuple(a.strip() for a in arms.split(",") if a.strip())
    for arm in arm_list:
        try:
            arm_settings(arm)
        except ValueError as err:
            raise click.BadParameter(f"{err} (choose from {', '.join(ARMS)})", param_hint="--arms") from None
    config = replace(DemoConfig(), task=task, seeds=tuple(seed_list), arms=arm_list, **({"steps": steps} if steps else {}))
    if config.steps <= config.next_at:
        raise click.BadParameter(f"{config.steps} leaves no step after the jump at step {config.next_at} "
                                 f"(use {config.next_at + 4 * config.save_every} or more)", param_hint="--steps")
    with atomic_output_dir(out, force=force) as tmp:
        report = run_demo(tmp, config, log=log_line, console=console, jobs=jobs)
    _render_demo(report, Path(out))
    if as_json:
        emit_json(report)
    else:
        click.echo(str(Path(out) / "report.json"))


def _demo_dgo(out: str, demo, steps: int | None, seeds: tuple[int, ...], force: bool, as_json: bool) -> None:
    from nextx.io.write import atomic_output_dir
    from nextx.studies.dgo_compare import DEMO_STEPS, compare

    settings = {**demo.settings(), "next_at": None, "next_ahead": None, "steps": steps or DEMO_STEPS}
    with atomic_output_dir(out, force=force) as tmp:
        report = compare(tmp, settings, seeds, log=log_line, console=console)
    from rich.table import Table

    table = Table(title=f"GRPO vs DGO, {len(seeds)} seed(s), exact accuracy on the test population",
                  title_justify="left")
    for column in ("seed", "GRPO final", "DGO final", "DGO final, guided", "steps saved"):
        table.add_column(column, justify="right")
    for seed, final in report["final_accuracy"].items():
        table.add_row(seed, f"{final['grpo']:.1%}", f"{final['dgo']:.1%}", f"{final['dgo_guided']:.1%}",
                      f"{report['per_seed'][seed]['steps_saved']:+.0f}")
    console.print(table)
    console.print(f"[bold]{report['headline']}[/]")
    if as_json:
        emit_json(report)
    else:
        click.echo(str(Path(out) / "report.json"))


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers", param_hint=option) from None
    if not values:
        raise click.BadParameter("give at least one", param_hint=option)
    return values


def _render_demo(report: dict, out: Path) -> None:
    from rich.table import Table

    evaluation = report["evaluation"]
    table = Table(title=f"jump at step {report['config']['next_at']}, {len(report['seeds'])} seed(s), exact accuracy "
                        f"on {evaluation['prompts']} test prompts", title_justify="left")
    for column in ("arm", "steps saved (95% CI)", "% saved", "accuracy Δ vs vanilla, points (95% CI)", "wall s"):
        table.add_column(column, justify="left" if column == "arm" else "right")
    table.add_row("vanilla", "—", "—", "—", f"{report['vanilla_wall_seconds']:.0f}")
    for arm, a in report["arms"].items():
        low, high = a["steps_saved_ci95"]
        delta = a["paired_accuracy_delta"]
        dlow, dhigh = delta["ci95"]
        ci = f" ({low:+.0f} to {high:+.0f})" if low is not None else " (1 seed)"
        dci = f" ({100 * dlow:+.1f} to {100 * dhigh:+.1f})" if dlow is not None else ""
        table.add_row(arm, f"{a['steps_saved']:+.0f}{ci}", f"{a['steps_saved_pct']:+.0f}%",
                      f"{100 * delta['mean']:+.1f}{dci}", f"{a['wall_seconds']:.0f}")
    console.print(table)
    console.print(f"[bold]{report['headline']}[/]")
    console.print(f"Report: {out / 'report.json'}, plot: {out / 'accuracy.png'}")
