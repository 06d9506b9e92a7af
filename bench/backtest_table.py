"""Benchmark: backtest of every method on known synthetic dynamics and on real GRPO runs.

Synthetic runs: real PEFT adapters with exactly rank-1 updates σ(t)·u(t)·vᵀ (linear, accelerating,
saturating σ; slowly rotating u), checkpoints every 10 steps to 100, last 3 held out, horizon 2.
Real runs: any run directories given (e.g. vanilla runs of bench/steps_saved.py); with
--eval-task, a second table gives the task reward of every method's prediction of the last
held-out checkpoint (validation prompts, paired difference vs stay ± SE): does the weight-space
winner also win on reward?

    python bench/backtest_table.py [RUN ...] [--holdout 3] [--horizon 3] [--eval-task addition]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from nextx import load_run  # noqa: E402
from nextx.backtesting import backtest  # noqa: E402

METHODS = ("next", "relex", "linear", "trend", "stay")


def row(name: str, report) -> str:
    cells = [f"{report.methods[m]['rel_error']:.4f} ({report.methods[m]['gain_over_stay']:+.0%})" for m in METHODS]
    return f"| {name} | " + " | ".join(cells) + f" | {report.best} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--holdout", type=int, default=3)
    parser.add_argument("--horizon", type=int, default=3)
    parser.add_argument("--next-lr", type=float, default=3e-4)
    parser.add_argument("--eval-task", default=None, help="add the task reward of each prediction (real runs)")
    args = parser.parse_args()
    print("| run | " + " | ".join(f"{m}: rel. error (gain over stay)" for m in METHODS) + " | best |")
    print("|---|" + "---|" * (len(METHODS) + 1))
    from nextx.studies.dynamics import KNOWN_DYNAMICS, make_lora_run, save_base

    work = Path(tempfile.mkdtemp(prefix="nextx-backtest-"))
    base = save_base(work / "base")
    for kind, dynamics in KNOWN_DYNAMICS.items():
        run = load_run(make_lora_run(work / kind, base, list(range(10, 101, 10)), dynamics=dynamics))
        for lr in (2e-5, args.next_lr):
            report = backtest(run, METHODS, holdout=3, horizon=2, hparams={"next": {"lr": lr}})
            print(row(f"synthetic {kind} (NExt lr {lr:g})", report), flush=True)
    rewards = []
    for path in args.runs:
        run = load_run(path)
        scorer = None
        if args.eval_task:
            from nextx.train.scorer import TaskScorer
            from nextx.train.tasks import get_task

            task = get_task(args.eval_task)
            scorer = TaskScorer(task, run.base_model_path(), task.validation_split())
        for lr in (2e-5, args.next_lr):
            report = backtest(run, METHODS, holdout=args.holdout, horizon=args.horizon, hparams={"next": {"lr": lr}},
                              scorer=scorer)
            name = f"GRPO run {path.parent.name}/{path.name} (NExt lr {lr:g})"
            print(row(name, report), flush=True)
            if report.reward:
                rewards.append((name, report.reward))
    if rewards:
        print("\n| run | " + " | ".join(f"{m}: Δ reward vs stay (± SE)" for m in METHODS if m != "stay")
              + " | stay | real checkpoint |")
        print("|---|" + "---|" * (len(METHODS) + 1))
        for name, reward in rewards:
            cells = [f"{100 * reward['methods'][m]['delta_vs_stay']:+.1f} (± {100 * reward['methods'][m]['se']:.1f})"
                     for m in METHODS if m != "stay"]
            print(f"| {name} | " + " | ".join(cells) + f" | {100 * reward['stay']:.1f}% | {100 * reward['actual']:.1f}% |")


if __name__ == "__main__":
    main()
