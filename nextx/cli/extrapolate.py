"""`nextx extrapolate`: write Ŵ = W_T + α·ΔŴ as a PEFT adapter and/or merged weights.

stdout carries only the output path (or the --json object), so the command pipes into any
training script: python train.py --init-adapter "$(nextx extrapolate runs/grpo -o out --coef 1)".
"""

from __future__ import annotations

import click

from nextx.backtest import auto_choice, backtest
from nextx.cli.common import console, emit_json, progress_bar, run_options
from nextx.cli.fit import METHOD_CHOICE, fit_with_progress, horizon_option, render_backtest
from nextx.errors import PredictorError
from nextx.extrapolate import DTYPES, extrapolate
from nextx.fit import load_predictor


def _coef(value: str) -> float | str:
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a number nor 'auto'") from None


@click.command("extrapolate")
@run_options
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="Output directory.")
@click.option("--predictor", "predictor_dir", type=click.Path(), default=None, help="A directory from `nextx fit`.")
@click.option("--method", type=click.Choice([*sorted(METHOD_CHOICE.choices), "auto"]), default=None,
              help="Fit this method now (default next; auto = the backtest winner).")
@click.option("--coef", default=None, help="α in Ŵ = W_T + α·ΔŴ, or 'auto' (chosen by backtest).")
@click.option("--to-step", type=float, default=None, help="Predict the weights at this training step.")
@click.option("--format", "fmt", type=click.Choice(["adapter", "merged", "both"]), default="adapter", show_default=True)
@click.option("--rank", type=click.IntRange(min=1), default=None, help="Recompress the adapter to this rank.")
@click.option("--shard-size", default="5GB", show_default=True, help="Max shard size of merged weights.")
@click.option("--dtype", type=click.Choice(sorted(DTYPES)), default=None,
              help="Output dtype (adapter default float32, merged default: the base's).")
@horizon_option
@click.option("--holdout", type=click.IntRange(min=1), default=2, show_default=True,
              help="Held-out checkpoints for --coef auto / --method auto.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing output.")
@click.option("--push-to-hub", "push_repo", default=None, metavar="OWNER/REPO", help="Also upload the output.")
@click.option("--private", is_flag=True, help="Create the --push-to-hub repo as private.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (paths, α, method) on stdout.")
def extrapolate_cmd(open_run, out, predictor_dir, method, coef, to_step, fmt, rank, shard_size, dtype, horizon,
                    holdout, seed, force, push_repo, private, as_json):
    """Extrapolate RUN's last checkpoint and write weights a trainer resumes from.

    \b
    Examples:
      nextx extrapolate runs/grpo -o runs/grpo-next --coef 1.5
      nextx extrapolate runs/grpo -o out --method auto --coef auto --format both --base Qwen2.5-1.5B
      python train.py --init-adapter "$(nextx extrapolate runs/grpo -o out --to-step 250)"
    """
    if (coef is None) == (to_step is None):
        raise click.UsageError("give exactly one of --coef α, --coef auto or --to-step S")
    if predictor_dir and method:
        raise click.UsageError("give either --predictor or --method, not both")
    coef = _coef(coef) if coef is not None else None
    run = open_run()
    provenance, traj = {}, None
    if predictor_dir:
        predictor = load_predictor(predictor_dir)
        method = predictor.name
        if coef == "auto":
            raise PredictorError("--coef auto needs --method (it refits on the run's history)")
    else:
        method = method or "next"
        if method == "auto" or coef == "auto":
            with progress_bar("backtest", len(run.modules)) as advance:
                report = backtest(run, holdout=holdout, horizon=horizon, seed=seed, progress=advance)
            render_backtest(report.to_dict())
            chosen, auto_coef = auto_choice(report, None if method == "auto" else method)
            method = chosen
            if coef == "auto":
                coef = auto_coef
                console.print(f"--coef auto: α = {coef:.3g} for {method} (calibrated on the held-out checkpoints)")
            provenance["backtest"] = report.to_dict()
        hparams = {"seed": seed} if method == "next" else {}
        predictor, traj = fit_with_progress(run, method, horizon, hparams)  # traj reused for the writing
    with progress_bar("writing", len(run.modules) * (2 if fmt == "both" else 1)) as advance:
        result = extrapolate(run, predictor, coef=coef, to_step=to_step, provenance=provenance, progress=advance,
                             traj=traj)
        paths = result.save(out, fmt=fmt, rank=rank, base=None, shard_size=shard_size, dtype=dtype, force=force)
    main_path = paths.get("adapter") if fmt == "adapter" else paths.get("merged") if fmt == "merged" else out
    console.print(f"{method}, α = {result.coef:.4g} (≈ step {result.target_step:.0f}) → {main_path}")
    hub_url = None
    if push_repo:
        from nextx.io.hub import push

        hub_url = push(out, push_repo, private=private)
        console.print(f"uploaded to {hub_url}")
    if as_json:
        emit_json({"output": str(main_path), **{k: str(v) for k, v in paths.items()}, "method": method,
                   "coef": result.coef, "target_step": result.target_step, "steps": run.steps, "hub_url": hub_url})
        return
    click.echo(str(main_path))
