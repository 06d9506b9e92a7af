"""`nextx train`, `nextx eval`, `nextx demo` (extra `train`: transformers, peft, trl, datasets)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from nextx.cli.common import console, emit_json
from nextx.errors import NextxError


def _require_train_extra() -> None:
    try:
        import peft  # noqa: F401
        import trl  # noqa: F401
    except ImportError:
        raise NextxError("this command needs the training extra", hint="pip install 'nextx[train]'") from None


def _log(message: str) -> None:
    console.print(message)


TASK_NAMES = ["addition", "chain"]


@click.command("train")
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="Run directory (checkpoint-N inside).")
@click.option("--model", default=None, help="Local path or Hub id (default: the embedded tiny model).")
@click.option("--task", type=click.Choice(TASK_NAMES), default=None, help="Built-in task (default addition).")
@click.option("--dataset", default=None, help="Local file or Hub id with prompt/answer columns.")
@click.option("--prompt-column", default="prompt", show_default=True)
@click.option("--answer-column", default="answer", show_default=True)
@click.option("--verifier", type=click.Choice(["exact", "math"]), default="exact", show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--save-every", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--lr", "learning_rate", type=float, default=3e-4, show_default=True)
@click.option("--prompts-per-step", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--num-generations", type=click.IntRange(min=2), default=8, show_default=True)
@click.option("--max-completion-length", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--beta", type=float, default=0.0, show_default=True)
@click.option("--loss-type", default="dapo", show_default=True)
@click.option("--lora-r", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--lora-alpha", type=float, default=16, show_default=True)
@click.option("--lora-targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--init-adapter", type=click.Path(exists=True), default=None, help="Start from this adapter.")
@click.option("--next-at", type=click.IntRange(min=1), default=None, help="Jump with NExt after this step.")
@click.option("--next-every", type=click.IntRange(min=1), default=None, help="…and again every N steps.")
@click.option("--method", "next_method", type=click.Choice(["next", "relex", "linear", "auto"]), default="next",
              show_default=True)
@click.option("--coef", "next_coef", default="1.0", show_default=True, help="α of the jump, or auto.")
@click.option("--horizon", "next_horizon", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--next-lr", type=float, default=None, help="NExt predictor learning rate (default 2e-5).")
def train_cmd(out, task, dataset, next_coef, lora_targets, **options):
    """Train GRPO + LoRA (TRL); checkpoints in OUT/checkpoint-N. NExt in the loop with --next-at.

    \b
    Examples:
      nextx train -o runs/grpo --steps 300
      nextx train -o runs/grpo-next --steps 300 --save-every 25 --next-at 150 --coef 1.5 --next-lr 3e-4
      nextx train -o runs/resumed --init-adapter runs/grpo-jump
    """
    _require_train_extra()
    from nextx.train.config import GRPORunConfig
    from nextx.train.grpo import train

    coef = next_coef if next_coef == "auto" else float(next_coef)
    config = GRPORunConfig(output_dir=out, task=task or (None if dataset else "addition"), dataset=dataset,
                           next_coef=coef, lora_targets=lora_targets.split(","), **options)
    click.echo(str(train(config, log=_log, console=console)))


@click.command("eval")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("--task", type=click.Choice(TASK_NAMES), default="addition", show_default=True)
@click.option("--base", type=click.Path(exists=True), default=None, help="Base model of an adapter.")
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(checkpoint, task, base, as_json):
    """Greedy held-out accuracy (500 prompts) of an adapter, merged model or checkpoint.

    \b
    Examples:
      nextx eval runs/grpo/checkpoint-300 --task addition
      nextx eval runs/grpo-next/merged --json
    """
    _require_train_extra()
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
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json on stdout.")
def demo_cmd(out, task, steps, seed, force, as_json):
    """Vanilla GRPO vs GRPO with a NExt jump on the embedded tiny model: how many steps are saved?

    \b
    Examples:
      nextx demo
      nextx demo -o demo-out --task chain --json
    """
    _require_train_extra()
    from dataclasses import replace

    from nextx.io.write import atomic_output_dir
    from nextx.train.demo import DemoConfig, run_demo

    config = replace(DemoConfig(), task=task, seed=seed, **({"steps": steps} if steps else {}))
    with atomic_output_dir(out, force=force) as tmp:
        report = run_demo(tmp, config, log=_log, console=console)
    _render_demo(report, Path(out))
    if as_json:
        emit_json(report)
    else:
        click.echo(str(Path(out) / "report.json"))


def _render_demo(report: dict, out: Path) -> None:
    from rich.table import Table

    curves = report["accuracy"]
    table = Table(title=f"held-out accuracy (target = vanilla's final {report['target_accuracy']:.1%})",
                  title_justify="left")
    table.add_column("step", justify="right")
    for name in curves:
        table.add_column(name, justify="right")
    for step in sorted({int(s) for c in curves.values() for s in c}):
        table.add_row(str(step), *(f"{100 * c[str(step)]:.1f}%" if str(step) in c else "" for c in curves.values()))
    console.print(table)
    reach, secs = report["steps_to_target"], report["wall_clock_to_target_s"]
    for name in curves:
        when = f"step {reach[name]}" if reach[name] is not None else "never"
        clock = f" ({secs[name]:.0f} s incl. jumps)" if secs.get(name) is not None else ""
        console.print(f"{name}: reaches the target at {when}{clock}")
    console.print(f"[bold]{report['verdict']}[/] Report: {out / 'report.json'}, plot: {out / 'accuracy.png'}")
    console.print(json.dumps({"steps_saved_pct": report["steps_saved_pct"]}))
