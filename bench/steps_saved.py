"""Benchmark: does NExt save RLVR steps on the embedded default? (issue goal: ≥ 50% fewer steps)

For each seed: vanilla GRPO, and GRPO with a jump (NExt, RELEX, two-point linear) at the same step
and α; greedy held-out accuracy of every checkpoint; steps and wall-clock (fit + extrapolation
included) to first reach the vanilla run's final accuracy. Prints a table of mean ± spread.

    python bench/steps_saved.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import asdict
from pathlib import Path

from nextx.train.demo import DemoConfig, run_demo

METHODS = ("next", "relex", "linear")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--task", default="addition")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="nextx-steps-"))
    reports = []
    for seed in args.seeds:
        config = DemoConfig(task=args.task, seed=seed)
        reports.append(run_demo(root / f"seed{seed}", config, log=lambda m: None, methods=METHODS))
        r = reports[-1]
        print(f"seed {seed}: target {r['target_accuracy']:.3f}; steps to target " +
              ", ".join(f"{k} {v}" for k, v in r["steps_to_target"].items()), flush=True)
    print(f"\nconfig: {json.dumps(asdict(DemoConfig(task=args.task)))}")
    print("| run | steps to vanilla's final acc. (mean ± sd) | % steps saved (mean ± sd) | wall-clock s (mean) |")
    print("|---|---|---|---|")
    for name in ("vanilla", *METHODS):
        steps = [r["steps_to_target"][name] for r in reports]
        reached = [s for s in steps if s is not None]
        saved = [r["steps_saved_pct_by_method"].get(name) for r in reports] if name != "vanilla" else [0.0] * len(reports)
        saved = [s for s in saved if s is not None]
        clock = [r["wall_clock_to_target_s"][name] for r in reports if r["wall_clock_to_target_s"][name] is not None]
        print(f"| {name} | {_ms(reached)} (reached {len(reached)}/{len(steps)}) | {_ms(saved)} | "
              f"{statistics.fmean(clock):.0f} |" if clock else f"| {name} | never | – | – |")
    (root / "summary.json").write_text(json.dumps(reports, indent=2))
    print(f"\nruns and reports in {root}")


def _ms(values: list[float]) -> str:
    if not values:
        return "–"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.0f} ± {sd:.0f}"


if __name__ == "__main__":
    main()
