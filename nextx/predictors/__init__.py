"""Predictors, one file each; a new method is one file plus one REGISTRY line."""

from __future__ import annotations

from nextx.errors import PredictorError
from nextx.predictors.base import ModuleContext, Prediction, Predictor
from nextx.predictors.linear import Linear
from nextx.predictors.next import NExt
from nextx.predictors.relex import Relex
from nextx.predictors.rre import RRE
from nextx.predictors.stay import Stay
from nextx.predictors.trend import Trend

REGISTRY: dict[str, type[Predictor]] = {cls.name: cls for cls in (NExt, Relex, Linear, Trend, RRE, Stay)}


def make_predictor(method: str, horizon: int = 5, **hparams) -> Predictor:
    """An unfitted predictor of the named method."""
    if method not in REGISTRY:
        raise PredictorError(f"unknown method {method!r}", hint=f"Choose one of: {', '.join(REGISTRY)}, auto.")
    return REGISTRY[method](horizon=horizon, **hparams)


__all__ = ["REGISTRY", "ModuleContext", "Prediction", "Predictor", "make_predictor"]
