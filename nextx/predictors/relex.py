"""`relex`: RELEX (arXiv 2605.21468), a linear model of the coefficient on one temporal direction.

Stack the flattened global deltas of a window of checkpoints as rows of X (T×d). Its top right
singular vector d₁ = Σᵢ (z₁ᵢ/s₁)·ΔWᵢ comes from the T×T Gram matrix XXᵀ = [⟨ΔWᵢ, ΔWⱼ⟩] (z₁, s₁²
its top eigenpair), computed from the LoRA factors. The coefficients cᵢ = ⟨ΔWᵢ, d₁⟩ = s₁·z₁ᵢ are
fit by least squares as c(t) = a·t + b over real step numbers, and

    Ŵ(t*) = W₀ + c(t*)·d₁,       t* = step_T + α·H   (H = horizon_steps)

Unlike the original (checkpoint index as time), nextx uses real steps, so uneven saving is fine.
Note that Ŵ at α = 0 is RELEX's fit at step_T, not W_T itself.
"""

from __future__ import annotations

import torch

from nextx.lowrank import FactoredUpdate
from nextx.predictors.base import ModuleContext, Param, Prediction, Predictor


class Relex(Predictor):
    name = "relex"
    params = (Param("window", 0, "relex: checkpoints in its window (0: all).", option="--relex-window", metavar="INTEGER"),)

    def horizon_steps(self, steps: list[int]) -> float:
        span = steps[-1] - steps[max(0, len(steps) - 1 - self.horizon)]
        return float(span) if span > 0 else float(steps[-1])

    def predict(self, ctx: ModuleContext) -> Prediction:
        window = int(self.hparams.get("window") or 0)
        first = max(0, ctx.last + 1 - window) if window > 0 else 0
        idx = list(range(first, ctx.last + 1))
        gram = torch.tensor([[ctx.stack.inner(i, j) for j in idx] for i in idx], dtype=torch.float64)
        evals, evecs = torch.linalg.eigh(gram)
        top, z = float(evals[-1]), evecs[:, -1]
        if top <= 0:
            return Prediction(FactoredUpdate())
        s1 = top**0.5
        if float(z.sum()) < 0:
            z = -z
        coef = s1 * z  # cᵢ = ⟨ΔWᵢ, d₁⟩
        t = torch.tensor([float(ctx.steps[i]) for i in idx], dtype=torch.float64)
        if len(idx) > 1:
            design = torch.stack([t, torch.ones_like(t)], 1)
            a, b = torch.linalg.lstsq(design, coef.unsqueeze(1)).solution.squeeze(1).tolist()
        else:
            a, b = float(coef[0]) / float(t[0]), 0.0
        direction = {i: float(zi) / s1 for i, zi in zip(idx, z, strict=True)}  # d₁ = Σ (z₁ᵢ/s₁)·ΔWᵢ
        at_last = a * ctx.steps[ctx.last] + b
        horizon = self.horizon_steps(ctx.steps[: ctx.last + 1])
        offset = FactoredUpdate({i: at_last * w for i, w in direction.items()}) - FactoredUpdate({ctx.last: 1.0})
        return Prediction(FactoredUpdate({i: a * horizon * w for i, w in direction.items()}), offset)
