"""`stay`: no extrapolation, Ŵ = W_T. The floor every method must beat."""

from __future__ import annotations

from nextx.lowrank import FactoredUpdate
from nextx.predictors.base import ModuleContext, Prediction, Predictor


class Stay(Predictor):
    name = "stay"
    candidate = False  # the reference every candidate is paired against

    def predict(self, ctx: ModuleContext) -> Prediction:
        return Prediction(FactoredUpdate())
