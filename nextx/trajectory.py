"""Rank-1 trajectories of a run: for every trained module and checkpoint t, the top singular
triplet (σ, u, v) of

    global  G_t = W_t − W₀
    local   L_t = W_t − W_{t−1}     (previous saved checkpoint; W₀ before the first)
    target  T_t = W_{t+h} − W_t     (h checkpoints ahead; exists while t + h is saved)

Signs are canonical: the global series starts with its largest |u| entry positive and keeps
u_t·u_{t−1} ≥ 0; local and target triplets are flipped (u and v together, so σ·u·vᵀ is unchanged)
to point along the global u at the same step, so all three series share one orientation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from nextx.devices import resolve_device
from nextx.io.run import Run
from nextx.lowrank import DenseStack, FactorStack, Spectrum, align_sign
from nextx.threads import free_core_threads

DEFAULT_HORIZON = 5  # NExt's target horizon H, in checkpoints: the paper's, and every API's default

DELTA_KINDS = ("global", "local", "target")


@dataclass
class Rank1Series:
    """σ_t, u_t, v_t of one kind of delta at the listed steps."""

    steps: list[int]
    sigma: torch.Tensor  # (T,) float64
    u: torch.Tensor  # (T, m) float32
    v: torch.Tensor  # (T, n) float32

    def head(self, count: int) -> Rank1Series:
        """The first ``count`` entries."""
        return Rank1Series(self.steps[:count], self.sigma[:count], self.u[:count], self.v[:count])

    @classmethod
    def from_spectra(cls, steps: list[int], spectra: list[Spectrum], shape: tuple[int, int]) -> Rank1Series:
        if not spectra:
            return cls([], torch.zeros(0, dtype=torch.float64), torch.zeros(0, shape[0]), torch.zeros(0, shape[1]))
        return cls(
            list(steps),
            torch.tensor([s.sigma for s in spectra], dtype=torch.float64),
            torch.stack([s.u.float() for s in spectra]),
            torch.stack([s.v.float() for s in spectra]),
        )


@dataclass
class ModuleTrajectory:
    """The three rank-1 series of one module, and the rank-1 energy σ₁/Σσᵢ of its global delta."""

    name: str
    shape: tuple[int, int]
    global_delta: Rank1Series
    local_delta: Rank1Series | None = None
    target_delta: Rank1Series | None = None
    energy: list[float | None] = field(default_factory=list)


@dataclass
class Trajectories:
    """Per-module rank-1 trajectories of a run, in checkpoint order."""

    steps: list[int]
    horizon: int
    modules: dict[str, ModuleTrajectory]

    def prefix(self, count: int) -> Trajectories:
        """The trajectories a run truncated to its first ``count`` checkpoints would have: global
        and local series cut at ``count``, targets kept only where t + h < count."""
        targets = max(0, count - self.horizon)
        modules = {
            name: ModuleTrajectory(
                name, mt.shape, mt.global_delta.head(count),
                mt.local_delta.head(count) if mt.local_delta else None,
                mt.target_delta.head(targets) if mt.target_delta else None,
                mt.energy[:count],
            )
            for name, mt in self.modules.items()
        }
        return Trajectories(self.steps[:count], self.horizon, modules)


def module_trajectory(
    name: str, stack: FactorStack | DenseStack, steps: list[int], horizon: int, kinds: Iterable[str] = DELTA_KINDS,
    *, local_last_only: bool = False, start: int = 0, reference: torch.Tensor | None = None,
) -> ModuleTrajectory:
    """Global, local and target rank-1 series of one module from its global-delta stack
    (``local_last_only``: the local triplet of the last checkpoint only, all a prediction needs).

    ``start``/``reference``: begin the global series at checkpoint ``start``, its sign aligned to
    ``reference`` (the canonical global u there, e.g. kept by a fitted predictor) instead of being
    chained from the first checkpoint — the same signs, without reading the earlier checkpoints."""
    kinds = set(kinds)
    count = len(steps)
    global_at = list(range(start, count))
    local_at = list(range(count - 1, count) if local_last_only else range(start, count)) if "local" in kinds else []
    target_at = list(range(start, count - horizon)) if "target" in kinds and horizon > 0 else []
    requests = [{i: 1.0} for i in global_at]
    requests += [{i: 1.0, i - 1: -1.0} if i else {0: 1.0} for i in local_at]
    requests += [{i + horizon: 1.0, i: -1.0} for i in target_at]
    spectra = stack.spectra(requests, all_values=[k < len(global_at) for k in range(len(requests))])  # energy: global only
    global_spectra: list[Spectrum] = []
    for spec in spectra[: len(global_at)]:  # each aligned to the one before (the first to ``reference``)
        global_spectra.append(align_sign(spec, global_spectra[-1].u if global_spectra else reference))
    global_u = {i: spec.u for i, spec in zip(global_at, global_spectra, strict=True)}
    rest = spectra[len(global_at):]
    local = [align_sign(s, global_u[i]) for s, i in zip(rest[: len(local_at)], local_at, strict=True)]
    target = [align_sign(s, global_u[i]) for s, i in zip(rest[len(local_at):], target_at, strict=True)]
    trajectory = ModuleTrajectory(
        name, stack.shape, Rank1Series.from_spectra([steps[i] for i in global_at], global_spectra, stack.shape),
        energy=[s.energy for s in global_spectra],
    )
    if "local" in kinds:
        trajectory.local_delta = Rank1Series.from_spectra([steps[i] for i in local_at], local, stack.shape)
    if "target" in kinds:
        trajectory.target_delta = Rank1Series.from_spectra([steps[i] for i in target_at], target, stack.shape)
    return trajectory


def trajectories(
    run: Run,
    *,
    horizon: int = DEFAULT_HORIZON,
    kinds: Iterable[str] = DELTA_KINDS,
    modules: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    device: str | torch.device = "cpu",
) -> Trajectories:
    """Rank-1 trajectories of every trained module (read one module at a time). ``device`` (auto,
    cpu, cuda[:N], mps): where a LoRA run's factor products run; the series are returned on the CPU."""
    kinds = tuple(kinds)
    names = list(modules) if modules is not None else list(run.modules)
    where = resolve_device(device)
    result = {}
    with free_core_threads():  # beside a busy process, a full-size pool slows every product several-fold
        for name in names:  # one module in memory at a time
            result[name] = module_trajectory(name, run.deltas(name, device=where), run.steps, horizon, kinds)
            if progress:
                progress(name)
    return Trajectories(run.steps, horizon, result)


def linear_fit_r2(x: list[float], y: list[float]) -> float | None:
    """R² of the least-squares line y ≈ a·x + b (None with < 3 points or constant y)."""
    if len(x) < 3:
        return None
    xs = torch.tensor(x, dtype=torch.float64)
    ys = torch.tensor(y, dtype=torch.float64)
    design = torch.stack([xs, torch.ones_like(xs)], 1)
    coef = torch.linalg.lstsq(design, ys.unsqueeze(1)).solution.squeeze(1)
    residual = float(((design @ coef - ys) ** 2).sum())
    total = float(((ys - ys.mean()) ** 2).sum())
    return None if total == 0 else 1.0 - residual / total
