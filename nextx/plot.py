"""PNG diagnostics (extra `plot`: matplotlib)."""

from __future__ import annotations

from pathlib import Path

from nextx.errors import NextxError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NextxError("plotting needs matplotlib", hint="pip install 'nextx[plot]'") from None
    return plt


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
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
    """Held-out accuracy vs step for vanilla and NExt runs, the jump(s) marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, curve in report["accuracy"].items():
        steps = [int(s) for s in curve]
        ax.plot(steps, [100 * v for v in curve.values()], marker="o", markersize=3, label=name)
    for jump in report["jumps"]:
        ax.axvline(jump["step"], color="gray", linestyle="--")
        ax.annotate(f"NExt jump (α={jump['coef']:.2g})", (jump["step"], ax.get_ylim()[0]), rotation=90, fontsize=8,
                    va="bottom", ha="right")
    ax.axhline(100 * report["target_accuracy"], color="gray", linewidth=0.8)
    ax.set(xlabel="GRPO step", ylabel="held-out greedy accuracy (%)", title=report.get("verdict", ""))
    ax.title.set_fontsize(9)
    ax.legend()
    return _save(plt, fig, path)
