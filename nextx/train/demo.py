"""`nextx demo`: does NExt save RLVR steps? Vanilla GRPO vs GRPO with a NExt jump, same start.

1. the embedded tiny model and task (built once, cached);
2. vanilla GRPO for ``steps`` steps, a checkpoint every ``save_every``;
3. the same run with `NExtCallback` jumping at ``next_at`` (fit on the checkpoints so far,
   Ŵ = W_T + α·ΔŴ loaded into the live adapter), then GRPO continues;
4. greedy held-out accuracy (500 prompts) of every checkpoint of both runs;
5. steps (and wall-clock, fit + extrapolation included) for each run to first reach the vanilla
   run's final accuracy, and the % saved — reported as measured, also when it is zero or negative.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nextx.train.config import GRPORunConfig
from nextx.train.grpo import train
from nextx.train.runs import evaluate_run
from nextx.train.tasks import get_task
from nextx.train.tiny_model import tiny_model_path


@dataclass
class DemoConfig:
    task: str = "addition"
    steps: int = 400
    save_every: int = 25
    next_at: int = 150
    next_method: str = "next"
    next_coef: float = 1.5
    next_horizon: int = 3
    next_lr: float = 3e-4  # NExt predictor lr for 96–256-long vectors (the paper's 2e-5 suits 1.5k–5k)
    learning_rate: float = 3e-4  # GRPO lr (see README for why)
    prompts_per_step: int = 16
    seed: int = 0


def first_reaching(curve: dict[int, float], target: float) -> int | None:
    """First step whose accuracy ≥ target."""
    return next((step for step, acc in sorted(curve.items()) if acc >= target - 1e-12), None)


def run_demo(out: Path, config: DemoConfig = DemoConfig(), log=print, methods: tuple[str, ...] = ("next",),
             console=None) -> dict:
    """Vanilla and one jumped run per method; curves and the comparison; out/report.json + accuracy.png."""
    task = get_task(config.task)
    base = tiny_model_path(config.task, log=log)
    grpo = GRPORunConfig(output_dir=str(out / "vanilla"), task=config.task, steps=config.steps,
                         save_every=config.save_every, seed=config.seed, learning_rate=config.learning_rate,
                         prompts_per_step=config.prompts_per_step)
    log(f"vanilla GRPO: {config.steps} steps on {config.task} (checkpoint every {config.save_every})")
    start = time.perf_counter()
    train(grpo, log=log, console=console)
    train_seconds = {"vanilla": time.perf_counter() - start}
    for method in methods:
        log(f"GRPO with a {method} jump at step {config.next_at} (α = {config.next_coef})")
        jumped = replace(grpo, output_dir=str(out / method), next_at=config.next_at, next_method=method,
                         next_coef=config.next_coef, next_horizon=config.next_horizon, next_lr=config.next_lr)
        start = time.perf_counter()
        train(jumped, log=log, console=console)
        train_seconds[method] = time.perf_counter() - start
    log("evaluating every checkpoint on the 500 held-out prompts")
    curves = {name: evaluate_run(out / name, task, base) for name in ("vanilla", *methods)}
    target = curves["vanilla"][max(curves["vanilla"])]
    reach = {name: first_reaching(curve, target) for name, curve in curves.items()}
    jumps = {m: json.loads((out / m / "nextx-train.json").read_text())["jumps"] for m in methods}
    seconds = {name: _seconds_to(reach[name], train_seconds[name], config.steps, jumps.get(name, []))
               for name in curves}
    saved = {m: _saved(reach["vanilla"], reach[m]) for m in methods}
    headline = methods[0]
    report = {
        "config": asdict(config), "base_model": str(base), "target_accuracy": target,
        "accuracy": {name: {str(k): v for k, v in sorted(c.items())} for name, c in curves.items()},
        "steps_to_target": reach, "steps_saved_pct": saved[headline], "steps_saved_pct_by_method": saved,
        "wall_clock_to_target_s": seconds,
        "wall_clock_saved_s": None if None in (seconds["vanilla"], seconds[headline])
        else seconds["vanilla"] - seconds[headline],
        "train_seconds": train_seconds, "jumps": jumps[headline], "jumps_by_method": jumps,
        "verdict": _verdict(saved[headline], reach[headline]),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    try:
        from nextx.plot import plot_demo

        plot_demo(report, out / "accuracy.png")
    except Exception as err:  # noqa: BLE001 - the plot is optional (extra `plot`)
        log(f"no plot: {err}")
    return report


def _seconds_to(step: int | None, total_seconds: float, steps: int, jumps: list[dict]) -> float | None:
    """Wall-clock to reach ``step``: training time per step × step, plus every jump made by then."""
    if step is None:
        return None
    jump_seconds = sum(j["seconds"] for j in jumps)
    per_step = (total_seconds - jump_seconds) / steps
    return step * per_step + sum(j["seconds"] for j in jumps if j["step"] <= step)


def _saved(vanilla: int | None, other: int | None) -> float | None:
    """% fewer steps than vanilla to the target (None if either never reaches it)."""
    if other is None or not vanilla:
        return None
    return 100.0 * (vanilla - other) / vanilla


def _verdict(saved: float | None, reached: int | None) -> str:
    if reached is None:
        return "NExt did not reach the vanilla run's final accuracy within the step budget: no steps saved."
    if saved <= 0:
        return f"NExt saved no steps on this run ({saved:.0f}%)."
    return f"NExt reached the vanilla run's final accuracy {saved:.0f}% sooner (in steps)."
