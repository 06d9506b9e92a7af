"""Benchmark: GRPO vs DGO on the embedded default, paired by seed (≥ 5 seeds, 95% intervals).

Each seed: GRPO for K·S steps and DGO for K iterations of S RL steps, from the same tiny model that
reads experience lines, same clip-higher (0.28); exact accuracy of every checkpoint on the task's
test population (plain prompts), DGO's final policy also with experiences at test time. Prints the
steps saved (DGO's checkpoints on GRPO's curve), the paired final accuracy differences and wall-clock.

    python bench/dgo.py --seeds 5 --jobs 2
    python bench/dgo.py --seeds 5 --jobs 2 --steps 50 --set dgo_iterations=2
"""

from __future__ import annotations

import json
from pathlib import Path

from nextx.studies.dgo_compare import DEMO_STEPS, build_dgo_report, prepare_bench, run_pair
from nextx.studies.options import ci_text, map_seeds, seeds_parser


def quiet(message: str) -> None:
    pass


def one_seed(out: Path, settings: dict, seed: int) -> dict:
    return run_pair(out / f"seed{seed}", settings, seed, log=quiet)


def main() -> None:
    parser = seeds_parser(__doc__, "e.g. --set dgo_iterations=2")
    parser.add_argument("--steps", type=int, default=DEMO_STEPS, help="RL steps per DGO iteration")
    args = parser.parse_args()
    root, settings = prepare_bench(args.out, args.set, args.steps, "nextx-dgo-")
    results = {}
    for seed, result in map_seeds(one_seed, range(args.first_seed, args.first_seed + args.seeds), args.jobs, root, settings, threads=args.threads):
        results[str(seed)] = result
        curves = result["curves"]
        print(f"seed {seed} done: final accuracy grpo {curves['grpo'][max(curves['grpo'])]:.3f}, dgo "
              f"{curves['dgo'][max(curves['dgo'])]:.3f}, dgo guided {result['guided']:.3f}", flush=True)
    report = build_dgo_report(settings, dict(sorted(results.items())))
    (root / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False))
    summary = report["summary"]
    print(f"\nsettings: {json.dumps(settings)}\n")
    print("| measure | mean (95% CI) |\n|---|---|")
    for name, key, scale, unit, digits in (("steps saved by DGO (GRPO's equivalent step)", "steps_saved", 1, "", 0),
                                           ("% of GRPO's steps saved", "steps_saved_pct", 1, "%", 0),
                                           ("accuracy Δ at equal RL steps, points", "paired_accuracy_delta", 100, "", 1)):
        item = summary[key]
        print(f"| {name} | {ci_text(scale * item['mean'], [None if v is None else scale * v for v in item['ci95']], unit, digits)} |")
    for name, key in (("final accuracy Δ, plain prompts, points", "final_accuracy_delta"),
                      ("final accuracy Δ, DGO with experiences at test time, points", "final_guided_accuracy_delta")):
        item = report[key]
        print(f"| {name} | {ci_text(100 * item['mean'], [None if v is None else 100 * v for v in item['ci95']], '', 1)} |")
    wall = report["wall_seconds"]
    print(f"\nwall s per run (mean): GRPO {wall['grpo']['mean']:.0f}, DGO {wall['dgo']['mean']:.0f}")
    print(f"\n{report['headline']}\nruns and report.json in {root}")


if __name__ == "__main__":
    main()
