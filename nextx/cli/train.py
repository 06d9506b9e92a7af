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
from nextx.train.config import GRPORunConfig, RunSettings
from nextx.train.settings import flag_of
from nextx.train.tasks import TASKS


def require_train_extra() -> None:
    try:
        import peft  # noqa: F401
        import trl  # noqa: F401
    except ImportError:
        raise NextxError("this command needs the training extra", hint="pip install 'nextx[train]'") from None


def log_line(message: str) -> None:
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
        wrapper = click.option(flag_of(f), f.name, **{k: v for k, v in option.items() if v is not None})(wrapper)
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

            result = train_dgo(config, log=log_line, console=console)
        else:
            from nextx.train.grpo import train

            result = train(config, log=log_line, console=console)
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
    from nextx.io.write import overlaps

    target = Path(config.output_dir).resolve()
    for flag, value in (("--init-adapter", config.init_adapter), ("--dataset", config.dataset), ("--model", config.model)):
        if value is None or not Path(value).exists():
            continue  # a Hub id, or nothing
        source = Path(value).resolve()
        if overlaps(target, source):
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
    result = train(config, log=log_line, console=console, resume=True if resume == "latest" else resume)
    _print_result(result, as_json)


@click.command("eval")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("--task", type=click.Choice(TASK_NAMES), default="addition", show_default=True)
@click.option("--base", default=None, help="Base model of an adapter: a dir, a Hub id or hf://OWNER/REPO "
              "(default: the adapter's base_model_name_or_path).")
@click.option("--population", is_flag=True, help="Exact accuracy on the task's whole test population (not 500 "
              "held-out prompts).")
@click.option("--experiences", "bank", type=click.Path(exists=True), default=None,
              help="DGO (TTS): answer with experiences retrieved from this bank (a file, or a DGO run directory).")
@click.option("--rounds", type=click.IntRange(1, 20), default=1, show_default=True,
              help="With --experiences: rounds of test-time scaling; after each, the bank is renewed from the "
                   "policy's answers to validation prompts (never the test prompts').")
@click.option("--experiences-per-prompt", "k", type=click.IntRange(1, 16), default=None,
              help="Experiences retrieved per prompt (default: the DGO run's, else 1).")
@click.option("--save-bank", type=click.Path(), default=None, help="Write the renewed bank here (JSON lines).")
@click.option("--force", is_flag=True, help="Overwrite --save-bank.")
@click.option("--json", "as_json", is_flag=True)
def eval_cmd(checkpoint, task, base, population, bank, rounds, k, save_bank, force, as_json):
    """Greedy accuracy (500 held-out prompts, or --population) of an adapter, merged model or checkpoint;
    with --experiences, DGO's experience-guided test-time scaling, a line per round.

    \b
    Examples:
      nextx eval runs/grpo/checkpoint-300 --task addition
      nextx eval runs/grpo-next/merged --json
      nextx eval runs/dgo/iteration-3/checkpoint-100 --experiences runs/dgo --rounds 3
    """
    require_train_extra()
    from nextx.train.runs import evaluate_path
    from nextx.train.tasks import get_task

    task_obj = get_task(task)
    if bank is not None:
        return _eval_rounds(checkpoint, task_obj, base, population, bank, rounds, k, save_bank, force, as_json)
    result = evaluate_path(checkpoint, task_obj, base, population=population)
    where = "test-population" if result.exact else "held-out"
    if as_json:
        emit_json({"checkpoint": checkpoint, "task": task, **result.to_dict()})
    else:
        click.echo(f"{result.accuracy:.4f}")
        console.print(f"{task}: accuracy {result.accuracy:.1%} on {result.n} {where} prompts")


def _eval_rounds(checkpoint, task, base, population, bank_path, rounds, k, save_bank, force, as_json):
    from nextx.train.dgo.tts import tts_from_paths

    if save_bank is not None and Path(save_bank).exists() and not force:
        raise NextxError("the bank file already exists", path=save_bank, hint="Pass --force to overwrite it.")
    result = tts_from_paths(checkpoint, task, base, bank_path, rounds=rounds, k=k, population=population)
    if save_bank is not None:
        result.bank.save(save_bank)
    if as_json:
        emit_json({"checkpoint": checkpoint, "task": task.name, "bank": str(result.bank_file), "k": result.k,
                   "style": result.style, "test_prompts": result.test_size,
                   "rounds": [r.to_dict() for r in result.rounds]})
        return
    click.echo(f"{result.rounds[-1].accuracy:.4f}")
    for r in result.rounds:
        what = "no experience (zero)" if r.round == 0 else f"bank of {r.bank}"
        renewed = f"; renewal after it: {r.added} added, {r.replaced} replaced, {r.rejected} rejected" \
            if r.round and r.round < len(result.rounds) - 1 else ""
        console.print(f"round {r.round}: accuracy {r.accuracy:.1%} on {result.test_size} prompts, {what}{renewed}")
