"""`nextx extrapolate`: write Ŵ = W_T + α·ΔŴ as a PEFT adapter and/or merged weights.

stdout carries only the output path (or the --json object), so the command pipes into any
training script: python train.py --init-adapter "$(nextx extrapolate runs/grpo -o out --ahead 50)".
When no jump is worth taking (--select reward, or --ahead auto finding none) nothing is written,
stdout is empty (--json: "jump": false) and the exit code is 0.
"""

from __future__ import annotations

import json

import click
from rich.table import Table

from nextx.choose import choose_jump
from nextx.cli.common import (
    console,
    emit_json,
    eval_options,
    make_scorer,
    number_or_auto,
    progress_bar,
    run_options,
)
from nextx.cli.fit import (
    METHOD_CHOICE,
    backtest_progress,
    fit_with_progress,
    horizon_option,
    method_options,
    render_backtest,
)
from nextx.errors import PredictorError
from nextx.extrapolation import DTYPES, check_output_path, extrapolate
from nextx.fitting import load_predictor
from nextx.io.write import parse_size
from nextx.predictors import DEFAULT_METHOD


@click.command("extrapolate")
@run_options
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="Output directory.")
@click.option("--predictor", "predictor_dir", type=click.Path(), default=None, help="A directory from `nextx fit`.")
@click.option("--method", type=click.Choice([*sorted(METHOD_CHOICE.choices), "auto"]), default=None,
              help="Fit this method now (default next; auto = the backtest winner, or with --select reward every "
                   "candidate method).")
@click.option("--ahead", default=None, metavar="STEPS|auto",
              help="Jump this many training steps past the last checkpoint (auto: calibrated by backtest).")
@click.option("--to-step", type=float, default=None, help="Predict the weights at this training step.")
@click.option("--coef", default=None, help="Advanced: the method's own α (next/relex: horizons, linear: intervals).")
@click.option("--select", type=click.Choice(["weights", "reward"]), default="weights", show_default=True,
              help="reward: score candidates (methods × steps ahead) and stay; write one only if it wins.")
@click.option("--min-se", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="--select reward: the winner must beat stay by more than this many paired SE.")
@click.option("--cap", type=click.FloatRange(min=0), default=None,
              help="Trust region: per module ‖Ŵ − W_T‖ ≤ CAP × ‖W_T − W_{T−1}‖ (the last interval's update).")
@eval_options
@click.option("--format", "fmt", type=click.Choice(["adapter", "merged", "both", "base"]), default="adapter",
              show_default=True, help="adapter: a PEFT adapter of Ŵ; merged: Ŵ as full weights; both; base: the jumped "
              "base W₀ + (Ŵ − W_T) for resuming the run's own checkpoint (LoRA, optimizer) with only the base path "
              "changed.")
@click.option("--rank", type=click.IntRange(min=1), default=None, help="Recompress the adapter to this rank.")
@click.option("--shard-size", default="5GB", show_default=True, help="Max shard size of merged weights.")
@click.option("--dtype", type=click.Choice(sorted(DTYPES)), default=None,
              help="Output dtype (adapter default float32, merged default: the base's).")
@horizon_option
@click.option("--holdout", type=click.IntRange(min=1), default=3, show_default=True,
              help="Held-out checkpoints for --ahead auto / --method auto (as backtest's).")
@click.option("--seed", type=int, default=0, show_default=True)
@method_options
@click.option("--force", is_flag=True, help="Replace an existing output.")
@click.option("--push-to-hub", "push_repo", default=None, metavar="OWNER/REPO", help="Also upload the output.")
@click.option("--private", is_flag=True, help="Create the --push-to-hub repo as private.")
@click.option("--revision", "push_revision", default=None, help="--push-to-hub to this branch (created if missing).")
@click.option("--commit-message", default=None, help="--push-to-hub commit message.")
@click.option("--create-pr", is_flag=True, help="--push-to-hub as a pull request.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (paths, steps ahead, method) on stdout.")
def extrapolate_cmd(open_run, out, predictor_dir, method, ahead, to_step, coef, select, min_se, cap, eval_task,
                    eval_function, eval_cmd, eval_timeout, eval_size, fmt, rank, shard_size, dtype, horizon, holdout,
                    seed, hparams, force, push_repo, private, push_revision, commit_message, create_pr, as_json):
    """Extrapolate RUN's last checkpoint and write weights a trainer resumes from.

    \b
    Examples:
      nextx extrapolate runs/grpo -o runs/grpo-next --ahead 100
      nextx extrapolate runs/grpo -o out --method auto --select reward --eval-task addition --base BASE
      nextx extrapolate runs/grpo -o out --method auto --ahead auto --format both --base Qwen/Qwen2.5-1.5B
      python train.py --init-adapter "$(nextx extrapolate runs/grpo -o out --to-step 250)"
    """
    if push_repo:
        from nextx.io.hub import check_repo_id

        check_repo_id(push_repo, "--push-to-hub")  # before anything is computed or written
    ahead, coef = _jump_size(ahead, to_step, coef, select)
    if predictor_dir and method:
        raise click.UsageError("give either --predictor or --method, not both")
    parse_size(shard_size)  # inputs are checked before any expensive work
    run = open_run()
    check_output_path(run, out)
    if fmt != "adapter" and run.base_model_path() is None:
        raise PredictorError("merged output needs the base model W₀",
                             hint="Pass --base PATH or a Hub id (the adapter names no base nextx can find).")
    scorer = make_scorer(run, eval_task, eval_function, eval_cmd, eval_timeout, eval_size)
    if select == "reward" and scorer is None:
        raise click.UsageError("--select reward needs --eval-task, --eval or --eval-cmd")
    if predictor_dir:
        if ahead == "auto" or select == "reward":
            raise PredictorError("--ahead auto and --select reward need --method (they refit on the run's history)")
        with progress_bar("writing", len(run.modules)) as advance:
            result = extrapolate(run, load_predictor(predictor_dir), ahead=ahead, to_step=to_step, coef=coef,
                                 progress=advance, cap=cap)
        record = {"jump": True, "criterion": "given", "reason": "given"}
    else:
        method = method or DEFAULT_METHOD
        if method == "auto" and select == "weights":
            console.print("--method auto: choosing by weight-space error on held-out checkpoints, not by task reward "
                          "(add --select reward --eval… to choose by reward).")
        choice = choose_jump(run, method=method, ahead=ahead, to_step=to_step, coef=coef, horizon=horizon,
                             select=select, scorer=scorer, min_se=min_se, holdout=holdout, seed=seed,
                             hparams=hparams, fitter=fit_with_progress, log=None, cap=cap,
                             backtest_progress=backtest_progress)
        if choice.backtest:
            render_backtest(choice.backtest)
        if choice.candidates:
            render_candidates(choice.candidates, choice.scoring_seconds)
        record = choice.to_dict()
        if not choice.jump:
            console.print(f"[bold]{choice.reason}[/]: nothing written.")
            if as_json:
                emit_json({"output": None, "steps": run.steps, **record})
            return
        result = choice.extrapolation
    push_to = {"repo": push_repo, "private": private, "message": commit_message, "revision": push_revision,
               "create_pr": create_pr} if push_repo else None
    _write(result, out, record, fmt=fmt, rank=rank, shard_size=shard_size, dtype=dtype, force=force, push_to=push_to,
           as_json=as_json)


def _jump_size(ahead, to_step, coef, select) -> tuple:
    """(ahead, coef) from the options, exactly one of --ahead / --to-step / --coef (none with reward selection)."""
    ahead, coef = number_or_auto(ahead, "--ahead"), number_or_auto(coef, "--coef")
    if coef == "auto":  # older spelling of --ahead auto
        coef, ahead = None, (ahead if ahead is not None else "auto")
    given = sum(x is not None for x in (ahead, to_step, coef))
    if given > 1 or (given == 0 and select != "reward"):
        raise click.UsageError("give exactly one of --ahead STEPS, --ahead auto, --to-step S or --coef α")
    return ahead, coef


def _write(result, out, record: dict, *, fmt, rank, shard_size, dtype, force, push_to: dict | None, as_json) -> None:
    """Write the chosen jump, report it (stderr), push it, print its path or the JSON object (stdout)."""
    with progress_bar("writing", len(result.run.modules) * (2 if fmt == "both" else 1)) as advance:
        result.progress = advance
        paths = result.save(out, fmt=fmt, rank=rank, base=None, shard_size=shard_size, dtype=dtype, force=force)
    main_path = paths[fmt] if fmt in ("merged", "base") else paths["adapter"]  # both: the adapter (what trainers resume)
    console.print(f"{result.predictor.name}: {result.ahead:.4g} steps ahead (α = {result.coef:.4g}, "
                  f"≈ step {result.target_step:.0f}) → {main_path}")
    rank_error = None
    if rank and "adapter" in paths:
        rank_error = json.loads((paths["adapter"] / "nextx.json").read_text()).get("max_rank_error")
        console.print(f"--rank {rank}: largest relative truncation error over modules {rank_error:.3g}")
    hub_url = None
    if push_to:
        from nextx.io.hub import push

        hub_url = push(out, push_to.pop("repo"), **push_to)
        console.print(f"uploaded to {hub_url}")
    if as_json:
        emit_json({**record, "output": str(main_path), **{k: str(v) for k, v in paths.items()},
                   "method": result.predictor.name, "ahead_steps": result.ahead, "coef": result.coef,
                   "target_step": result.target_step, "steps": result.run.steps, "hub_url": hub_url,
                   "max_rank_error": rank_error})
        return
    click.echo(str(main_path))


def render_candidates(rows: list[dict], seconds: float) -> None:
    """The reward-selection table on stderr: score ± paired SE vs stay, steps ahead."""
    table = Table(title=f"candidates scored in {seconds:.1f} s (Δ = paired difference vs stay)", title_justify="left")
    for column in ("method", "steps ahead", "α", "score", "Δ vs stay", "paired SE", ""):
        table.add_column(column, justify="left" if column in ("method", "") else "right")
    for row in rows:
        mark = "chosen" if row["chosen"] else ("beats stay" if row["beats_stay"] else "")
        table.add_row(row["method"], f"{row['ahead_steps']:.1f}", f"{row['coef']:.3g}", f"{row['score']:.4f}",
                      f"{row['delta']:+.4f}", "—" if row["se"] is None else f"{row['se']:.4f}", mark)
    console.print(table)
