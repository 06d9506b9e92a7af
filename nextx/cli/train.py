"""`nextx train`, `nextx eval`, `nextx demo` (extra `train`: transformers, peft, trl, datasets)."""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from pathlib import Path

import click

from nextx.cli.common import console, emit_json, number_or_auto, param_callback, param_metavar
from nextx.errors import NextxError
from nextx.studies.arms import ARMS, DEMO_ARMS, DEMO_SEEDS, arm_settings
from nextx.train.config import GRPORunConfig, RunSettings
from nextx.train.tasks import TASKS


def require_train_extra() -> None:
    try:
        import peft  # noqa: F401
        import trl  # noqa: F401
    except ImportError:
        raise NextxError("this command needs the training extra", hint="pip install 'nextx[train]'") from None


def _log(message: str) -> None:
    console.print(message)


TASK_NAMES = list(TASKS)



def settings_options(func):
    """One option per `RunSettings` field (flag, type, bounds, choices and help from its declaration),
    passed on as ``settings`` = the fields given; the config's defaults apply to the rest."""
    hints = typing.get_type_hints(RunSettings)
    declared = [f for f in dataclasses.fields(RunSettings) if f.metadata]

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        settings = {f.name: kwargs.pop(f.name) for f in declared}
        return func(*args, settings={k: v for k, v in settings.items() if v is not None and v is not False}, **kwargs)

    for f in reversed(declared):
        meta, hint = f.metadata, hints[f.name]
        base = next((t for t in typing.get_args(hint) if t is not type(None)), hint) if typing.get_args(hint) else hint
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        option = {"help": meta["help"], "default": None, "callback": None, "type": None}
        if "param" in meta:  # a predictor's own setting: its parsing and placeholder
            option["callback"], option["metavar"] = param_callback(meta["param"]), param_metavar(meta["param"])
        elif meta["choices"]:
            option["type"] = click.Choice(meta["choices"])
        elif meta["path"]:
            option["type"] = click.Path(exists=True)
        elif hint == float | str | None:  # a number of steps or "auto"
            option["callback"] = lambda ctx, param, text: number_or_auto(text, "--" + param.name.replace("_", "-"))
        elif base is bool:
            option["is_flag"] = True
        elif base in (int, float):
            bounded = click.IntRange if base is int else click.FloatRange
            option["type"] = bounded(min=meta["min"], max=meta["max"]) if meta["min"] is not None else base
        elif typing.get_origin(hint) is list:
            option["callback"] = lambda ctx, param, text: None if text is None else [t for t in text.split(",") if t]
        if default not in (None, ""):
            shown = ",".join(default) if isinstance(default, list) else default
            option["help"] += f" [default: {shown}]"
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        wrapper = click.option(flag, f.name, **{k: v for k, v in option.items() if v is not None})(wrapper)
    return wrapper


@click.command("train")
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="Run directory (checkpoint-N inside).")
@settings_options
@click.option("--force", is_flag=True, help="Replace an existing, non-empty output directory.")
@click.option("--resume", default=None, is_flag=False, flag_value="latest", metavar="[CHECKPOINT]",
              help="Continue the run in OUT from its last checkpoint (or CHECKPOINT), exactly: its recorded settings "
                   "(--steps may grow; --model may name a jumped base), optimizer, RNG and in-loop jumps. Needs a run "
                   "trained with --save-state.")
@click.option("--json", "as_json", is_flag=True, help="Print nextx-train.json (config, seconds, jumps) on stdout.")
def train_cmd(out, settings, force, resume, as_json):
    """Train GRPO + LoRA (TRL); checkpoints in OUT/checkpoint-N. NExt in the loop with --next-at.
    With --algo dgo: DGO's iterations in OUT/iteration-K (--steps each); prints the last one's run.

    \b
    Examples:
      nextx train -o runs/grpo --steps 300
      nextx train -o runs/grpo-next --steps 300 --save-every 25 --next-at 150 --next-ahead 100 --next-lr 3e-4
      nextx train -o runs/grpo-sel --steps 300 --save-every 25 --next-at 150 --method auto --next-select reward
      nextx train -o runs/resumed --init-adapter runs/grpo-jump
      nextx train -o runs/grpo --resume --steps 400
      nextx train -o runs/dgo --algo dgo --steps 100 --dgo-iterations 3
    """
    require_train_extra()

    if resume is not None:
        with _run_lock(out):
            _resume(out, settings, resume, as_json)
        return
    if "dataset" in settings:
        settings.setdefault("task", None)  # a dataset replaces the default task
    config = GRPORunConfig(output_dir=out, **settings)  # every input checked before anything is removed
    refuse_inputs_in_output(config)
    with _run_lock(out):
        if Path(out).exists() and any(Path(out).iterdir()):
            if not force:
                raise NextxError("the output directory is not empty: a new run would mix its checkpoints with the old "
                                 "ones", path=out, hint="Choose another -o, or pass --force to replace it.")
            import shutil

            shutil.rmtree(out)
        if config.algo == "dgo":
            from nextx.train.dgo.loop import train_dgo

            result = train_dgo(config, log=_log, console=console)
        else:
            from nextx.train.grpo import train

            result = train(config, log=_log, console=console)
    _print_result(result, as_json)


def _run_lock(out: str):
    """One `nextx train` per run directory (by rank 0 of a multi-process launch: its ranks share it)."""
    import contextlib
    import os

    from nextx.io.write import output_lock

    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext()
    Path(out).resolve().parent.mkdir(parents=True, exist_ok=True)
    return output_lock(Path(out).resolve())


def refuse_inputs_in_output(config) -> None:
    """NextxError when the run directory is, contains or sits inside one of the run's inputs: --force would
    delete it, or the run would write into it."""
    target = Path(config.output_dir).resolve()
    for flag, value in (("--init-adapter", config.init_adapter), ("--dataset", config.dataset), ("--model", config.model)):
        if value is None or not Path(value).exists():
            continue  # a Hub id, or nothing
        source = Path(value).resolve()
        if target == source or target in source.parents or source in target.parents:
            raise NextxError(f"the run directory would hold or overwrite the run's own {flag}", path=config.output_dir,
                             hint=f"Write the run elsewhere (-o), outside {source}.")


def _print_result(result, as_json: bool) -> None:
    """The run's path (or its record) on stdout, once: by rank 0 of a multi-process launch."""
    import os

    if int(os.environ.get("RANK", "0")) != 0:
        return
    if as_json:
        emit_json({"output": str(result.path), **result.record})
    else:
        click.echo(str(result.path))


def _resume(out: str, settings: dict, resume: str, as_json: bool) -> None:
    """`nextx train -o OUT --resume`: the recorded run, continued (only --steps may change)."""
    from nextx.train.grpo import RECORD_FILE, train

    record = Path(out) / RECORD_FILE
    if not record.is_file():
        raise NextxError(f"no {RECORD_FILE} in the output directory: nothing nextx trained to resume", path=out,
                         hint="Resume a run written by nextx train (or use TRL's resume_from_checkpoint in your script).")
    recorded = {k: v for k, v in json.loads(record.read_text())["config"].items() if k != "output_dir"}
    changed = sorted(k for k, v in settings.items() if k not in ("steps", "model") and recorded.get(k) != v)
    if changed:
        raise NextxError(f"--resume continues the run as recorded, but --{changed[0].replace('_', '-')} differs from "
                         "it", path=record, hint="Drop the option (only --steps and --model may change: a jumped base "
                                                 "from nextx extrapolate --format base), or start a new run.")
    config = GRPORunConfig(output_dir=out, **{**recorded, **settings})
    result = train(config, log=_log, console=console, resume=True if resume == "latest" else resume)
    _print_result(result, as_json)


@click.command("eval")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("--task", type=click.Choice(TASK_NAMES), default="addition", show_default=True)
@click.option("--base", default=None, help="Base model of an adapter: a dir, a Hub id or hf://OWNER/REPO "
              "(default: the adapter's base_model_name_or_path).")
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(checkpoint, task, base, as_json):
    """Greedy held-out accuracy (500 prompts) of an adapter, merged model or checkpoint.

    \b
    Examples:
      nextx eval runs/grpo/checkpoint-300 --task addition
      nextx eval runs/grpo-next/merged --json
    """
    require_train_extra()
    from nextx.train.runs import evaluate_path
    from nextx.train.tasks import get_task

    result = evaluate_path(checkpoint, get_task(task), base)
    if as_json:
        emit_json({"checkpoint": checkpoint, "task": task, **result.to_dict()})
    else:
        click.echo(f"{result.accuracy:.4f}")
        console.print(f"{task}: accuracy {result.accuracy:.1%} on {result.n} held-out prompts")


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
        report = run_demo(tmp, config, log=_log, console=console, jobs=jobs)
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
        report = compare(tmp, settings, seeds, log=_log, console=console)
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
