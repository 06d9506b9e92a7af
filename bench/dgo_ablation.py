"""Benchmark: what DGO's gain is made of (`nextx.studies.dgo_ablation`), paired by seed, 95% intervals.

Arms: DGO (none); its ablations — annealing, renewal, rephrasing, distillation (the paper's Table 3;
rephrasing is DGO itself on the embedded task, whose rewrite is the trajectory) and rft (no
experiences: the same SFT on the policy's right answers to plain prompts); next (DGO with
trend-fast NExt jumps in each RL phase) and guided-only (β = 0). Each is scored on plain prompts
("zero") and over rounds of experience-guided test-time scaling; GRPO at equal RL steps and at
each arm's wall-clock (it runs --grpo-factor times as many steps). Finished runs and scores in
--out are reused.

    python bench/dgo_ablation.py --seeds 5 --jobs 2 --out runs/dgo-ablation
    python bench/dgo_ablation.py --first-seed 100 --seeds 2 --jobs 2 --arms none,rft    # tuning seeds
"""

from __future__ import annotations

import json
from pathlib import Path

from nextx.studies.dgo_ablation import ARMS, build_report, run_seed
from nextx.studies.dgo_compare import DEMO_STEPS, prepare_bench
from nextx.studies.options import ci_text, map_seeds, seeds_parser


def quiet(message: str) -> None:
    pass


def one_seed(out: Path, settings: dict, arms: tuple[str, ...], grpo_factor: float, rounds: int, seed: int) -> dict:
    return run_seed(out / f"seed{seed}", settings, seed, arms, grpo_factor=grpo_factor, tts_rounds=rounds, log=quiet)


def points(item: dict) -> str:
    return ci_text(100 * item["mean"], [None if v is None else 100 * v for v in item["ci95"]], "", 1)


def times(item: dict) -> str:
    low, high = item["ci95"]
    return f"{item['mean']:.1f}×" + ("" if low is None else f" ({low:.1f}–{high:.1f})")


def render(report: dict) -> None:
    """The tables of a report (also: --render REPORT.json)."""
    settings = report["settings"]
    grpo = report["grpo"]
    print(f"\nsettings: {json.dumps(settings)}\nGRPO at {settings['steps'] * settings.get('dgo_iterations', 3)} steps: "
          f"{100 * grpo['equal_steps']['mean']:.1f}% in {grpo['seconds_at_equal_steps']['mean']:.0f} s\n")
    print("| arm | zero, % | TTS (last round) − zero, points | zero − GRPO (equal steps) | zero − GRPO (equal "
          "wall-clock) | zero − DGO | cost × GRPO |\n|---|---|---|---|---|---|---|")
    for arm, entry in report["arms"].items():
        versus = points(entry["zero_minus_dgo"]) if "zero_minus_dgo" in entry else "—"
        cost = entry["cost_vs_grpo"]
        print(f"| {arm} | {100 * entry['zero']['mean']:.1f} | {points(entry['tts_minus_zero'][-1])} | "
              f"{points(entry['zero_minus_grpo'])} | {points(entry['zero_minus_grpo_equal_wall'])} | {versus} | "
              f"{times(cost)} |")
    print("\naccuracy gained over the base per 1000 s of wall-clock (points): GRPO "
          f"{points(grpo['gain_per_1000_seconds'])}; " + "; ".join(
              f"{arm} {points(entry['zero_gain_per_1000_seconds'])}" for arm, entry in report["arms"].items()))
    print("TTS (last round) − GRPO at equal RL steps (points): " + "; ".join(
        f"{arm} {points(entry['tts_minus_grpo'])}" for arm, entry in report["arms"].items()))
    print("TTS − zero by round (points): " + "; ".join(
        f"{arm}: " + ", ".join(points(r) for r in entry["tts_minus_zero"]) for arm, entry in report["arms"].items()))
    print("seconds by stage (mean): " + "; ".join(
        f"{arm}: " + ", ".join(f"{k} {v:.0f}" for k, v in entry["stage_seconds"].items())
        for arm, entry in report["arms"].items()))


def main() -> None:
    parser = seeds_parser(__doc__, "e.g. --set dgo_iterations=2")
    parser.add_argument("--steps", type=int, default=DEMO_STEPS, help="RL steps per DGO iteration")
    parser.add_argument("--arms", default=",".join(a for a in ARMS if a != "rephrasing"),
                        help=f"comma-separated, of: {', '.join(ARMS)}")
    parser.add_argument("--grpo-factor", type=float, default=3.0, help="GRPO runs this many times DGO's RL steps")
    parser.add_argument("--rounds", type=int, default=3, help="test-time scaling rounds")
    parser.add_argument("--render", type=Path, default=None, help="print the tables of a report.json, run nothing")
    args = parser.parse_args()
    if args.render is not None:
        return render(build_report(*(lambda r: (r["settings"], r["per_seed"]))(json.loads(args.render.read_text()))))
    arms = tuple(a for a in args.arms.split(",") if a)
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"--arms: unknown {', '.join(unknown)} (choose from {', '.join(ARMS)})")
    root, settings = prepare_bench(args.out, args.set, args.steps, "nextx-dgo-ablation-")
    results = {}
    for seed, result in map_seeds(one_seed, range(args.first_seed, args.first_seed + args.seeds), args.jobs, root,
                                  settings, arms, args.grpo_factor, args.rounds, threads=args.threads):
        results[str(seed)] = result
        print(f"seed {seed} done: " + ", ".join(f"{a} {r['zero']:.3f}/{r['tts'][-1]:.3f} in {r['seconds']:.0f} s"
                                                 for a, r in result["arms"].items()), flush=True)
    report = build_report(settings, dict(sorted(results.items())))
    (root / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False))
    render(report)
    print(f"\nruns and report.json in {root}")


if __name__ == "__main__":
    main()
