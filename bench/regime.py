"""Regime study: in which GRPO settings does vanilla keep improving and is the trajectory predictable?

For each setting (one knob changed from the embedded default at a time) and seed: a vanilla GRPO run
saving a checkpoint every 5 steps; exact test accuracy every ``--eval-every`` steps; then, on the
checkpoints up to ``--history`` steps at spacings of 10, 25 and 50 steps, a weight-space backtest
(the last 3 checkpoints held out, 2 at spacing 50) of linear, trend and (at spacing 25) NExt: its
gain over "stay" says how much of the coming motion the run's own history predicts.

Printed per setting (mean over seeds, min … max): accuracy at step 0, at the middle and at the end,
the second half's gain (is vanilla still improving?), and the backtest gains.

    python bench/regime.py --seeds 2 --jobs 2 [--settings default,lr1e-4,...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

SETTINGS = {  # name → GRPORunConfig fields changed from the embedded default
    "default": {},
    "lr1e-4": {"learning_rate": 1e-4},
    "lr1e-3": {"learning_rate": 1e-3},
    "prompts32": {"prompts_per_step": 32},
    "rank2": {"lora_r": 2, "lora_alpha": 4},
    "rank32": {"lora_r": 32, "lora_alpha": 64},
    "chain": {"task": "chain"},
}
SPACINGS = {10: 3, 25: 3, 50: 2}  # checkpoint spacing (steps) → held-out checkpoints


def one_run(out: Path, setting: str, seed: int, steps: int, eval_every: int, history: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from nextx.backtesting import backtest
    from nextx.io.run import load_run
    from nextx.train.config import GRPORunConfig
    from nextx.train.grpo import train
    from nextx.train.runs import evaluate_run
    from nextx.train.tasks import get_task
    from nextx.train.tiny_model import tiny_model_path

    fields = {"task": "addition", **SETTINGS[setting]}
    run_dir = out / setting / f"seed{seed}"
    config = GRPORunConfig(output_dir=str(run_dir), steps=steps, save_every=5, seed=seed, **fields)
    start = time.perf_counter()
    train(config, log=lambda m: None)
    seconds = time.perf_counter() - start
    task = get_task(config.task)
    accuracy = evaluate_run(run_dir, task, tiny_model_path(config.task), population=True,
                            only=lambda s: s % eval_every == 0)
    run = load_run(str(run_dir), layout="trl")
    gains = {}
    for spacing, holdout in SPACINGS.items():
        sub = replace(run, checkpoints=[c for c in run.checkpoints if c.step % spacing == 0 and c.step <= history],
                      _files=run._files)
        methods = ("linear", "trend", "next") if spacing == 25 else ("linear", "trend")
        if len(sub.checkpoints) < holdout + 4:  # NExt with horizon 3 needs 4 fitted checkpoints
            continue
        report = backtest(sub, methods, holdout=holdout, horizon=3, hparams={"next": {"lr": 3e-4}})
        gains[spacing] = {m: report.methods[m]["gain_over_stay"] for m in methods}
    return {"setting": setting, "seed": seed, "train_seconds": seconds, "accuracy": accuracy, "gains": gains}


def spread(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    values = [v * scale for v in values]
    mean = sum(values) / len(values)
    return f"{mean:+.{digits}f} ({min(values):+.{digits}f} … {max(values):+.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--history", type=int, default=300, help="backtest on checkpoints up to this step")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="nextx-regime-"))
    settings = [s.strip() for s in args.settings.split(",")]
    from nextx.train.tiny_model import tiny_model_path

    for task in {SETTINGS[s].get("task", "addition") for s in settings}:
        tiny_model_path(task)  # build once, before the workers
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(one_run, out, s, seed, args.steps, args.eval_every, args.history)
                   for s in settings for seed in range(args.seeds)]
        results = []
        for future in futures:
            results.append(future.result())
            r = results[-1]
            print(f"{r['setting']} seed {r['seed']}: {r['train_seconds']:.0f} s, final accuracy "
                  f"{r['accuracy'][max(r['accuracy'])]:.3f}", flush=True)
    (out / "regime.json").write_text(json.dumps(results, indent=2))
    mid = args.steps // 2
    print(f"\n{args.seeds} seeds per setting; mean (min … max); accuracy in %, gains over stay in % of stay's error")
    end = args.steps
    print(f"| setting | acc. step 0 | acc. step {mid} | acc. step {end} | gain 0→{mid} | gain {mid}→{end} | "
          "linear gain @10 | trend gain @10 | linear @25 | trend @25 | next @25 | linear @50 | trend @50 | train s |")
    print("|---" * 14 + "|")
    for setting in settings:
        rows = [r for r in results if r["setting"] == setting]
        acc = [{int(k): v for k, v in r["accuracy"].items()} for r in rows]
        cells = [spread([a[0] for a in acc], 100), spread([a[mid] for a in acc], 100),
                 spread([a[args.steps] for a in acc], 100), spread([a[mid] - a[0] for a in acc], 100),
                 spread([a[args.steps] - a[mid] for a in acc], 100)]
        for spacing, method in ((10, "linear"), (10, "trend"), (25, "linear"), (25, "trend"), (25, "next"),
                                (50, "linear"), (50, "trend")):
            values = [r["gains"][spacing][method] for r in rows if spacing in r["gains"]]
            cells.append(spread(values, 100, 0) if values else "–")
        cells.append(f"{sum(r['train_seconds'] for r in rows) / len(rows):.0f}")
        print(f"| {setting} | " + " | ".join(cells) + " |")
    print(f"\nruns and regime.json in {out}")


if __name__ == "__main__":
    main()
