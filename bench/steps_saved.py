"""Benchmark: how many RLVR steps does a jump save on the embedded default? Paired, ≥ 5 seeds.

For each seed: vanilla GRPO and one run per arm (NExt, RELEX, two-point linear, each jumping the
same number of steps ahead; "reward": the candidate that beats staying on the validation prompts,
or no jump), identical up to the jump. Exact accuracy of every checkpoint on the task's test
population; `nextx.measure` maps post-jump checkpoints to vanilla's equivalent step. Prints mean
steps saved with a 95% interval over seeds, the paired accuracy difference, and wall-clock.

    python bench/steps_saved.py --seeds 5 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

from nextx.train.demo import ARMS, DemoConfig, run_seed, write_report


def _one_seed(out: Path, config: DemoConfig, seed: int, threads: int) -> tuple[int, dict]:
    import torch

    torch.set_num_threads(threads)
    return seed, run_seed(out, config, seed, log=lambda m: None)


def main() -> None:
    parser = seeds_parser(__doc__, "e.g. --set prompts_per_step=32")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms")
    parser.add_argument("--task", default="addition")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="nextx-steps-"))
    root.mkdir(parents=True, exist_ok=True)
    config = replace(DemoConfig(), task=args.task, seeds=tuple(range(args.seeds)),
                     arms=tuple(a.strip() for a in args.arms.split(",")), **({"steps": args.steps} if args.steps else {}))
    config = with_settings(config, args.set)
    config.check()
    from nextx.train.tiny_model import tiny_model_path

    tiny_model_path(config.task)  # build once, before the workers
    threads = 1 if args.jobs > 1 else (os.cpu_count() or 1)
    results = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(_one_seed, root, config, seed, threads) for seed in config.seeds]
        for future in futures:
            seed, result = future.result()
            results[str(seed)] = result
            print(f"seed {seed} done: final accuracy " + ", ".join(
                f"{arm} {curve[max(curve)]:.3f}" for arm, curve in result["curves"].items()), flush=True)
    report = write_report(root, config, dict(sorted(results.items())))
    print(f"\nconfig: {json.dumps(asdict(config))}")
    print(f"evaluation: exact accuracy on {report['evaluation']['prompts']} prompts ({report['evaluation']['what']})")
    print(f"vanilla: {report['vanilla_wall_seconds']:.0f} s per run (mean)\n")
    print("| arm | steps saved, mean (95% CI) | % of vanilla's steps saved (95% CI) | accuracy Δ vs vanilla at equal "
          "steps, points (95% CI) | jumped (seeds) | wall s (incl. jump) |")
    print("|---|---|---|---|---|---|")
    for arm, a in report["arms"].items():
        delta = a["paired_accuracy_delta"]
        print(f"| {arm} | {_ci(a['steps_saved'], a['steps_saved_ci95'])} | "
              f"{_ci(a['steps_saved_pct'], a['steps_saved_pct_ci95'], '%')} | "
              f"{_ci(100 * delta['mean'], [None if v is None else 100 * v for v in delta['ci95']], '', 1)} | "
              f"{a['jumped']}/{len(config.seeds)} | {a['wall_seconds']:.0f} |")
    print(f"\n{report['headline']}\nruns, report.json and accuracy.png in {root}")


def seeds_parser(doc: str, set_example: str) -> argparse.ArgumentParser:
    """The options every paired-seeds bench takes: --seeds, --jobs, --out, --set FIELD=VALUE."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel (1 torch thread each when > 1)")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help=f"a demo, GRPO or DGO setting, {set_example} (repeatable)")
    return parser


def with_settings(config: DemoConfig, settings: list[str]) -> DemoConfig:
    """DemoConfig (so any GRPO setting) fields set from FIELD=VALUE, values read as JSON when they parse."""
    values = {}
    for item in settings:
        key, _, text = item.partition("=")
        if key not in DemoConfig.__dataclass_fields__:
            raise SystemExit(f"--set {item}: {key!r} is not a demo or GRPO setting")
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return replace(config, **values)


def _ci(mean: float, ci: list, unit: str = "", digits: int = 0) -> str:
    if ci[0] is None:
        return f"{mean:+.{digits}f}{unit}"
    return f"{mean:+.{digits}f}{unit} ({ci[0]:+.{digits}f} to {ci[1]:+.{digits}f})"


if __name__ == "__main__":
    main()
