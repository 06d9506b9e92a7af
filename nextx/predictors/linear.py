"""`linear`: two-point weight extrapolation (RL-Extra, arXiv 2601.04537; ExPO, arXiv 2404.16792).

    Ŵ = W_T + α·(W_T − W_{T−1})

i.e. RL-Extra's W_a + α'·(W_b − W_a) with a = T−1, b = T and α' = 1 + α. α = 1 continues at the
last checkpoint-to-checkpoint velocity for one more checkpoint interval.
"""

from __future__ import annotations

from nextx.lowrank import FactoredUpdate
from nextx.predictors.base import ModuleContext, Prediction, Predictor


class Linear(Predictor):
    name = "linear"

    def predict(self, ctx: ModuleContext) -> Prediction:
        t = ctx.last
        direction = FactoredUpdate({t: 1.0, t - 1: -1.0} if t > 0 else {t: 1.0})
        return Prediction(direction)
