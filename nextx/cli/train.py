"""`nextx train`, `nextx eval`, `nextx demo` (extra `train`: transformers, peft, trl, datasets)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from nextx.cli.common import console, emit_json, number_or_auto
from nextx.errors import NextxError
from nextx.predictors import REGISTRY
from nextx.train.arms import ARMS


def require_train_extra() -> None:
    try:
        import peft  # noqa: F401
        import trl  # noqa: F401
    except ImportError:
        raise NextxError("this command needs the training extra", hint="pip install 'nextx[train]'") from None


def _log(message: str) -> None:
    console.print(message)


TASK_NAMES = ["addition", "chain"]
JUMP_METHODS = sorted(m for m in REGISTRY if m != "stay")



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
@click.option("--force", is_flag=True, help="Replace an existing, non-empty output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print nextx-train.json (config, seconds, jumps) on stdout.")
@click.option("--init-adapter", type=click.Path(exists=True), default=None, help="Start from this adapter.")
@click.option("--next-at", type=click.IntRange(min=1), default=None, help="Jump with NExt after this step.")
@click.option("--next-every", type=click.IntRange(min=1), default=None, help="…and again every N steps.")
@click.option("--method", "next_method", type=click.Choice([*JUMP_METHODS, "auto"]), default="next",
              show_default=True)
@click.option("--next-ahead", default=None,
              help="Jump this many training steps past the checkpoint, or auto (default: one horizon).")
@click.option("--horizon", "next_horizon", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--next-lr", type=float, default=None, help="NExt predictor learning rate (default 2e-5).")
@click.option("--next-select", type=click.Choice(["weights", "reward"]), default="weights", show_default=True,
              help="reward: jump only if a candidate beats staying on the task's validation prompts.")
@click.option("--next-apply", type=click.Choice(["offset", "refactor", "merge"]), default="offset", show_default=True,
              help="offset: into the frozen base (exact, Adam kept); refactor: into the rank-r LoRA (Adam reset); "
                   "merge: LoRA and jump merged into the base, fresh LoRA and Adam.")
@click.option("--next-damping", type=click.FloatRange(min=0, min_open=True, max=1), default=1.0, show_default=True,
              help="With --next-every: the k-th jump goes damping^k × --next-ahead.")
@click.option("--next-cap", type=click.FloatRange(min=0), default=None,
              help="Trust region: each jump ≤ this × the last checkpoint interval's update, per module.")
@click.option("--next-eval-size", type=click.IntRange(min=10), default=500, show_default=True,
              help="Validation prompts per candidate with --next-select reward.")
def train_cmd(out, task, dataset, next_ahead, lora_targets, force, as_json, **options):
    """Train GRPO + LoRA (TRL); checkpoints in OUT/checkpoint-N. NExt in the loop with --next-at.

    \b
    Examples:
      nextx train -o runs/grpo --steps 300
      nextx train -o runs/grpo-next --steps 300 --save-every 25 --next-at 150 --next-ahead 100 --next-lr 3e-4
      nextx train -o runs/grpo-sel --steps 300 --save-every 25 --next-at 150 --method auto --next-select reward
      nextx train -o runs/resumed --init-adapter runs/grpo-jump
    """
    require_train_extra()
    from nextx.train.config import GRPORunConfig
    from nextx.train.grpo import train

    if Path(out).exists() and any(Path(out).iterdir()):
        if not force:
            raise NextxError("the output directory is not empty: a new run would mix its checkpoints with the old ones",
                             path=out, hint="Choose another -o, or pass --force to replace it.")
        import shutil

        shutil.rmtree(out)
    config = GRPORunConfig(output_dir=out, task=task or (None if dataset else "addition"), dataset=dataset,
                           next_ahead=number_or_auto(next_ahead, "--next-ahead"), lora_targets=lora_targets.split(","),
                           **options)
    run_dir = train(config, log=_log, console=console)
    if as_json:
        emit_json({"output": str(run_dir), **json.loads((run_dir / "nextx-train.json").read_text())})
    else:
        click.echo(str(run_dir))


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
@click.option("--seeds", default="0,1", show_default=True, help="Comma-separated seeds (≥ 5 for a claim).")
@click.option("--arms", default="next-offset", show_default=True,
              help="Comma-separated jump arms: " + ", ".join(ARMS) + " (-offset: exact jump into the base).")
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json on stdout.")
def demo_cmd(out, task, steps, seeds, arms, force, as_json):
    """Vanilla GRPO vs GRPO with a jump on the embedded tiny model: steps saved, with a 95% interval.

    Every arm is paired with a vanilla run of the same seed (identical up to the jump); accuracy is
    exact on the task's whole test population. Two seeds by default (~10 minutes on 2 cores): the
    interval is wide; bench/steps_saved.py runs five.

    \b
    Examples:
      nextx demo
      nextx demo -o demo-out --seeds 0,1,2,3,4 --arms next,reward --json
    """
    require_train_extra()
    from dataclasses import replace

    from nextx.io.write import atomic_output_dir
    from nextx.train.demo import DemoConfig, run_demo

    seed_list = _int_list(seeds, "--seeds")
    arm_list = tuple(a.strip() for a in arms.split(",") if a.strip())
    for arm in arm_list:
        if arm not in ARMS:
            raise click.BadParameter(f"unknown arm {arm!r} (choose from {', '.join(ARMS)})", param_hint="--arms")
    config = replace(DemoConfig(), task=task, seeds=tuple(seed_list), arms=arm_list, **({"steps": steps} if steps else {}))
    if config.steps <= config.next_at:
        raise click.BadParameter(f"{config.steps} leaves no step after the jump at step {config.next_at} "
                                 f"(use {config.next_at + 4 * config.save_every} or more)", param_hint="--steps")
    with atomic_output_dir(out, force=force) as tmp:
        report = run_demo(tmp, config, log=_log, console=console)
    _render_demo(report, Path(out))
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
