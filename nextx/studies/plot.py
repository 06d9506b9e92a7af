"""PNG diagnostics (extra `plot`: matplotlib)."""

from __future__ import annotations

from pathlib import Path

from nextx.errors import NextxError, OutputExistsError
from nextx.studies.measure import Interval


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NextxError("plotting needs matplotlib", hint="pip install 'nextx[plot]'") from None
    return plt


def check_new(path: str | Path) -> None:
    """OutputExistsError if the PNG exists: plots never overwrite a file."""
    if Path(path).exists():
        raise OutputExistsError("the plot file already exists", path=path, hint="Remove it or choose another --plot.")


def _save(plt, fig, path: str | Path) -> Path:
    """The figure as a new PNG, written whole or not at all (a full disk: one line, no partial file)."""
    from nextx.io.write import atomic_file

    check_new(path)
    fig.tight_layout()
    try:
        with atomic_file(path, "--plot") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def plot_inspect(report: dict, path: str | Path) -> Path:
    """σ₁ (left) and rank-1 energy (right) of the global delta over steps, one line per module type."""
    plt = _pyplot()
    fig, (ax_sigma, ax_energy) = plt.subplots(1, 2, figsize=(10, 4))
    for row in report["by_type"]:
        ax_sigma.plot(report["steps"], row["sigma"], marker="o", label=row["type"])
        if any(e is not None for e in row["energy"]):
            ax_energy.plot(report["steps"], row["energy"], marker="o", label=row["type"])
    ax_sigma.set(xlabel="step", ylabel="mean σ₁ of W_t − W₀", title="top singular value")
    ax_energy.set(xlabel="step", ylabel="σ₁ / Σσ", title="rank-1 energy")
    ax_sigma.legend(fontsize="small")
    return _save(plt, fig, path)


def plot_backtest(report: dict, path: str | Path) -> Path:
    """Relative error of each method at every held-out step."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [int(s) for s in report["holdout_steps"]]
    for name, m in report["methods"].items():
        ax.plot(steps, [m["per_step"][str(s)]["rel_error"] for s in steps], marker="o", label=name)
    ax.set(xlabel="held-out step", ylabel="‖Ŵ − W‖ / ‖W − W₀‖", title="backtest")
    ax.legend()
    return _save(plt, fig, path)


def plot_demo(report: dict, path: str | Path) -> Path:
    """Left: accuracy vs step, mean over seeds per arm with the seeds' 95% band, the jump marked.
    Right: steps saved per arm, mean and 95% interval over seeds."""

    plt = _pyplot()
    fig, (ax, ax_saved) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    seeds = list(report["accuracy"])
    for arm in ("vanilla", *report["arms"]):
        steps = sorted({int(s) for seed in seeds for s in report["accuracy"][seed][arm]})
        stats = [Interval.of([100 * report["accuracy"][seed][arm][str(s)] for seed in seeds]) for s in steps]
        line = ax.plot(steps, [i.mean for i in stats], marker="o", markersize=3, label=arm)[0]
        if len(seeds) >= 3:  # a t-interval over 2 seeds (×12.7 the SE) would swamp the plot: show the seeds
            ax.fill_between(steps, [i.low for i in stats], [i.high for i in stats], color=line.get_color(), alpha=0.15)
        else:
            for seed in seeds:
                ax.plot(steps, [100 * report["accuracy"][seed][arm][str(s)] for s in steps], color=line.get_color(),
                        linewidth=0.6, alpha=0.4)
    ax.axvline(report["config"]["next_at"], color="gray", linestyle="--", linewidth=0.8)
    ax.set(xlabel="GRPO step", ylabel="exact test accuracy (%)",
           title=f"mean of {len(seeds)} seed(s)" + (", 95% band" if len(seeds) >= 3 else ", thin: each seed"))
    ax.legend(fontsize="small")
    names = list(report["arms"])
    means = [report["arms"][a]["steps_saved"] for a in names]
    lows = [report["arms"][a]["steps_saved_ci95"][0] for a in names]
    highs = [report["arms"][a]["steps_saved_ci95"][1] for a in names]
    errors = None if None in lows else [[m - lo for m, lo in zip(means, lows, strict=True)],
                                        [hi - m for m, hi in zip(means, highs, strict=True)]]
    ax_saved.bar(names, means, yerr=errors, capsize=6, color="tab:blue", alpha=0.7)
    ax_saved.axhline(0, color="black", linewidth=0.8)
    ax_saved.set(ylabel="steps saved vs vanilla", title="steps saved (95% CI)" if errors else "steps saved (1 seed)")
    fig.suptitle(report.get("headline", ""), fontsize=8)
    return _save(plt, fig, path)
