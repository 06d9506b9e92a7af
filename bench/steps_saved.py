"""Benchmark: how many RLVR steps does a jump save on the embedded default? Paired, ≥ 5 seeds.

For each seed: vanilla GRPO and one run per arm (NExt, RELEX, two-point linear, each jumping the
same number of steps ahead; "reward": the candidate that beats staying on the validation prompts,
or no jump), identical up to the jump; the look-ahead peers (lookahead, sfpo) differ from step 0 and
SFPO is counted in rollout batches (its K + 1 updates per batch are one step on the x axis). Exact accuracy of every checkpoint on the task's test
population; `nextx.studies.measure` maps post-jump checkpoints to vanilla's equivalent step. Prints mean
steps saved with a 95% interval over seeds, the paired accuracy difference, the % fewer steps and %
less wall-clock to vanilla's final accuracy (run it on an idle machine: one thread per run).

    python bench/steps_saved.py --seeds 5 --jobs 2
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from nextx.studies.demo import ARMS, DemoConfig, quiet_seed, write_report
from nextx.studies.options import ci_text, map_seeds, seeds_parser, with_settings


def main() -> None:
    parser = seeds_parser(__doc__, "e.g. --set prompts_per_step=32")
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms")
    parser.add_argument("--task", default="addition")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="nextx-steps-"))
    root.mkdir(parents=True, exist_ok=True)
    config = replace(DemoConfig(), task=args.task, seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
                     arms=tuple(a.strip() for a in args.arms.split(",")), **({"steps": args.steps} if args.steps else {}))
    config = with_settings(config, args.set)
    config.check()
    from nextx.train.tiny_model import tiny_model_path

    tiny_model_path(config.task)  # build once, before the workers
    results = {}
    for seed, result in map_seeds(quiet_seed, config.seeds, args.jobs, root, config, threads=args.threads):
        results[str(seed)] = result
        print(f"seed {seed} done: final accuracy " + ", ".join(
            f"{arm} {curve[max(curve)]:.3f}" for arm, curve in result["curves"].items()), flush=True)
    report = write_report(root, config, dict(sorted(results.items())))
    print(f"\nconfig: {json.dumps(asdict(config))}")
    print(f"evaluation: exact accuracy on {report['evaluation']['prompts']} prompts ({report['evaluation']['what']})")
    print(f"vanilla: {report['vanilla_wall_seconds']:.0f} s per run (mean)\n")
    print("| arm | steps saved, mean (95% CI) | % of vanilla's steps saved (95% CI) | accuracy Δ vs vanilla at equal "
          "steps, points (95% CI) | % fewer steps to vanilla's final accuracy (95% CI) | % less wall-clock to it "
          "(95% CI) | not reached | jumped (seeds) | wall s (incl. jump) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for arm, a in report["arms"].items():
        delta, target = a["paired_accuracy_delta"], a["summary"]["to_target"]
        fewer, less = target["steps_fewer_pct"], target["wall_less_pct"]
        print(f"| {arm} | {ci_text(a['steps_saved'], a['steps_saved_ci95'])} | "
              f"{ci_text(a['steps_saved_pct'], a['steps_saved_pct_ci95'], '%')} | "
              f"{ci_text(100 * delta['mean'], [None if v is None else 100 * v for v in delta['ci95']], '', 1)} | "
              f"{ci_text(fewer['mean'], fewer['ci95'], '%')} | {ci_text(less['mean'], less['ci95'], '%')} | "
              f"{target['not_reached']}/{len(config.seeds)} | {a['jumped']}/{len(config.seeds)} | {a['wall_seconds']:.0f} |")
    print(f"\n{report['headline']}\nruns, report.json and accuracy.png in {root}")


if __name__ == "__main__":
    main()
