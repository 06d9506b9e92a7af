"""`trend`: a least-squares velocity over the last k checkpoints (a denoised two-point `linear`).

With checkpoint steps t_i and weights W_i (i = T−k+1 … T), the least-squares slope of W against t is

    Ŵ' = Σᵢ (t_i − t̄)·W_i / Σᵢ (t_i − t̄)²          (Σᵢ (t_i − t̄) = 0, so W₀ cancels: Σ cᵢ·ΔWᵢ)

and Ŵ = W_T + α·Δt·Ŵ' with Δt the last checkpoint interval, so α = 1 is one interval, as for
`linear` (which is this with k = 2). Averaging k checkpoints' motion removes the part of the last
interval's update that is noise; the prediction stays exact in factored form (rank ≤ k·r).
"""

from __future__ import annotations

from nextx.lowrank import FactoredUpdate
from nextx.predictors.base import ModuleContext, Param, Prediction, Predictor, positive_int

DEFAULT_WINDOW = 4


class Trend(Predictor):
    name = "trend"
    params = (Param("window", DEFAULT_WINDOW, "trend: checkpoints in the least-squares slope.", option="--trend-window", metavar="INTEGER", parse=positive_int),)

    def predict(self, ctx: ModuleContext) -> Prediction:
        window = int(self.hparams.get("window") or DEFAULT_WINDOW)
        first = max(0, ctx.last + 1 - max(window, 2))
        idx = list(range(first, ctx.last + 1))
        if len(idx) < 2:  # one checkpoint: its global delta over its step count
            return Prediction(FactoredUpdate({ctx.last: self.horizon_steps(ctx.steps[: ctx.last + 1]) / ctx.steps[ctx.last]}))
        times = [float(ctx.steps[i]) for i in idx]
        mean = sum(times) / len(times)
        spread = sum((t - mean) ** 2 for t in times)
        interval = self.horizon_steps(ctx.steps[: ctx.last + 1])
        return Prediction(FactoredUpdate({i: interval * (t - mean) / spread for i, t in zip(idx, times, strict=True)}))
