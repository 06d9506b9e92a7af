"""Predictors, one file each; a new method is one file plus one REGISTRY line."""

from __future__ import annotations

from nextx.errors import PredictorError
from nextx.predictors.base import ModuleContext, Param, Prediction, Predictor
from nextx.predictors.linear import Linear
from nextx.predictors.next import NExt
from nextx.predictors.relex import Relex
from nextx.predictors.rre import RRE
from nextx.predictors.stay import Stay
from nextx.predictors.trend import Trend
from nextx.trajectory import DEFAULT_HORIZON

REGISTRY: dict[str, type[Predictor]] = {cls.name: cls for cls in (NExt, Relex, Linear, Trend, RRE, Stay)}
DEFAULT_METHOD = NExt.name


def by_method(flat: dict) -> dict[str, dict]:
    """A flat settings dict (e.g. {"lr": 3e-4, "window": 6}) split per method by what each declares."""
    return {name: cls.accepts(flat) for name, cls in REGISTRY.items()}


def with_seed(hparams: dict[str, dict], seed: int) -> dict[str, dict]:
    """Per-method settings with ``seed`` added for every method that declares one (unless given)."""
    out = {name: dict(values) for name, values in hparams.items()}
    for name, cls in REGISTRY.items():
        if any(p.name == "seed" for p in cls.params):
            out.setdefault(name, {}).setdefault("seed", seed)
    return out


def trajectory_device(hparams: dict[str, dict]) -> str:
    """Where the rank-1 trajectories run: the ``device`` a method's settings name (NExt's
    ``--device``), else the CPU."""
    named = [str(values["device"]) for values in hparams.values() if values.get("device") is not None]
    return named[0] if named else "cpu"


def make_predictor(method: str, horizon: int = DEFAULT_HORIZON, **hparams) -> Predictor:
    """An unfitted predictor of the named method."""
    if method not in REGISTRY:
        raise PredictorError(f"unknown method {method!r}", hint=f"Choose one of: {', '.join(REGISTRY)}, auto.")
    return REGISTRY[method](horizon=horizon, **hparams)


__all__ = ["DEFAULT_METHOD", "REGISTRY", "ModuleContext", "Param", "Prediction", "Predictor", "by_method",
           "make_predictor", "with_seed"]
