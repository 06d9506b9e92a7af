"""Benchmark: NExt's fit quality against its training epochs — does the paper's 1000 pay for itself?

For each run, NExt is backtested (last --holdout checkpoints held out) with each epoch count and
with ``auto``; the table gives the weight-space error relative to the real held-out checkpoints
(lower is better), its gain over staying, and the fit's seconds. Synthetic runs: the exact rank-1
dynamics of the tests (checkpoints every 10 steps to 100, horizon 2). Real runs: any run
directories given (e.g. the vanilla runs of bench/steps_saved.py, horizon 3).

    python bench/epochs.py [RUN ...] [--epochs 100,200,300,500,1000,auto] [--next-lr 3e-4] [--fit-dtype bfloat16]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from nextx import load_run  # noqa: E402
from nextx.backtesting import backtest  # noqa: E402
from nextx.predictors.next import epochs_or_auto  # noqa: E402


def row(name: str, run, settings: list, horizon: int, holdout: int, lr: float, fit_dtype: str) -> str:
    """One table row: NExt's backtest at each epoch setting (error, gain over stay, fit seconds)."""
    cells = []
    for epochs in settings:
        report = backtest(run, ["next"], holdout=holdout, horizon=horizon, hparams={"next": {"epochs": epochs, "lr": lr, "fit_dtype": fit_dtype}})
        scores = report.methods["next"]
        ran = f", {scores['epochs_run']} run" if epochs == "auto" and "epochs_run" in scores else ""
        cells.append(f"{scores['rel_error']:.4f} ({scores['gain_over_stay']:+.0%}; {scores['fit_seconds']:.1f} s{ran})")
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--epochs", default="100,200,300,500,1000,auto")
    parser.add_argument("--holdout", type=int, default=3)
    parser.add_argument("--horizon", type=int, default=3, help="NExt's horizon on the real runs")
    parser.add_argument("--next-lr", type=float, default=3e-4)
    parser.add_argument("--fit-dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--no-synthetic", action="store_true")
    args = parser.parse_args()
    settings = [epochs_or_auto(text) for text in args.epochs.split(",")]
    print(f"NExt backtest relative error (gain over stay; fit seconds), lr {args.next_lr:g}, {args.fit_dtype}, "
          f"last {args.holdout} held out")
    print("| run | " + " | ".join(f"{e} epochs" for e in settings) + " |")
    print("|---|" + "---|" * len(settings))
    if not args.no_synthetic:
        from nextx.studies.dynamics import KNOWN_DYNAMICS, make_lora_run, save_base

        work = Path(tempfile.mkdtemp(prefix="nextx-epochs-"))
        base = save_base(work / "base")
        for kind, dynamics in KNOWN_DYNAMICS.items():
            run = load_run(make_lora_run(work / kind, base, list(range(10, 101, 10)), dynamics=dynamics))
            print(row(f"synthetic {kind}", run, settings, 2, 3, args.next_lr, args.fit_dtype), flush=True)
    for path in args.runs:
        print(row(f"{path.parent.name}/{path.name}", load_run(path), settings, args.horizon, args.holdout,
                  args.next_lr, args.fit_dtype), flush=True)


if __name__ == "__main__":
    main()
