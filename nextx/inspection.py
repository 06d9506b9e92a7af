"""`inspect_run`: the global-delta rank-1 picture of a run as plain data (rendered by `nextx inspect`).

Per module: σ₁ of G_t = W_t − W₀ at every step, rank-1 energy σ₁/Σσᵢ, and R² of the line
σ₁(t) ≈ a·t + b over real step numbers (how linear the growth is).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from nextx.io.run import Run
from nextx.trajectory import linear_fit_r2, trajectories


def module_type(name: str) -> str:
    """'model.layers.3.self_attn.q_proj' → 'q_proj'."""
    return name.rsplit(".", 1)[-1]


def inspect_run(run: Run, *, progress: Callable[[str], None] | None = None, device: str = "cpu") -> dict:
    """Run description plus per-module σ₁, energy and linear-fit R² of the global delta (the factor
    products on ``device``)."""
    traj = trajectories(run, horizon=0, kinds=("global",), progress=progress, device=device)
    modules = []
    for name, mt in traj.modules.items():
        sigma = [float(s) for s in mt.global_delta.sigma]
        spec = run.modules[name]
        modules.append({
            "name": name,
            "type": module_type(name),
            "shape": list(spec.shape),
            "rank": spec.rank,
            "sigma": sigma,
            "energy": mt.energy,
            "r2": linear_fit_r2([float(s) for s in run.steps], sigma),
        })
    return {**run.describe(), "modules": modules, "by_type": _by_type(modules), "summary": _summary(modules)}


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _by_type(modules: list[dict]) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for m in modules:
        groups.setdefault(m["type"], []).append(m)
    rows = []
    for kind, members in groups.items():
        steps = len(members[0]["sigma"])
        rows.append({
            "type": kind,
            "count": len(members),
            "shape": members[0]["shape"],
            "sigma": [_mean([m["sigma"][i] for m in members]) for i in range(steps)],
            "energy": [_mean([m["energy"][i] for m in members]) for i in range(steps)],
            "r2": _mean([m["r2"] for m in members]),
        })
    return rows


def _summary(modules: list[dict]) -> dict:
    r2 = [m["r2"] for m in modules if m["r2"] is not None]
    last_energy = [m["energy"][-1] for m in modules if m["energy"] and m["energy"][-1] is not None]
    return {
        "mean_last_energy": _mean(last_energy),
        "median_r2": statistics.median(r2) if r2 else None,
        "fraction_r2_above_0.9": sum(v > 0.9 for v in r2) / len(r2) if r2 else None,
        "fraction_r2_negative": sum(v < 0 for v in r2) / len(r2) if r2 else None,
    }
