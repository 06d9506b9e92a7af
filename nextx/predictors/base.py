"""The predictor interface: every method predicts, per module, Ŵ(α) = W_T + offset + α·ΔŴ.

``offset`` and ``ΔŴ`` are `FactoredUpdate`s (combinations of the run's own checkpoint deltas plus
rank-1 terms), so predictions, their errors and the adapters written from them stay exact and
never form an m×n matrix. α = 0 with no offset is "stay". α is each method's own unit; users speak
in training steps: ``ahead`` steps past the last checkpoint is α = ahead / horizon_steps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from nextx.errors import PredictorError
from nextx.lowrank import DenseStack, FactoredUpdate, FactorStack
from nextx.trajectory import DEFAULT_HORIZON, ModuleTrajectory, Trajectories


@dataclass(frozen=True)
class Param:
    """A hyper-parameter a method declares. The CLI (``option``), predictor.json, the callback and the
    backtest read the declarations, so no code outside `nextx.predictors` names a method's settings.
    ``parse`` turns the option's text into a value (ValueError with the reason when it cannot)."""

    name: str
    default: Any
    help: str
    option: str | None = None  # CLI flag; None: Python API only
    parse: Callable[[str], Any] | None = None  # default: the default's type
    choices: tuple[str, ...] = ()
    metavar: str | None = None  # CLI placeholder; default: the default's type, e.g. FLOAT

    def from_text(self, text: str) -> Any:
        if self.choices and text not in self.choices:
            raise ValueError(f"{text!r} is not one of {', '.join(self.choices)}")
        return (self.parse or type(self.default))(text)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"{text!r} is not a positive integer")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"{text!r} is not a positive number")
    return value


@dataclass
class ModuleContext:
    """What a predictor sees of one module when predicting from checkpoint ``last`` (an index)."""

    name: str
    stack: FactorStack | DenseStack | None  # None for methods that predict from trajectories alone
    steps: list[int]
    last: int
    trajectory: ModuleTrajectory | None = None


@dataclass
class Prediction:
    """Ŵ(α) = W_T + offset + α·direction for one module."""

    direction: FactoredUpdate
    offset: FactoredUpdate = field(default_factory=FactoredUpdate)

    def at(self, alpha: float, last: int) -> FactoredUpdate:
        """Ŵ(α) − W₀ as a factored update."""
        return FactoredUpdate({last: 1.0}) + self.offset + alpha * self.direction


class Predictor(ABC):
    """A method that, fitted on a run's history, predicts where each module goes next."""

    name: ClassVar[str]
    needs_trajectories: ClassVar[bool] = False  # fit() and predict() need rank-1 trajectories
    trains: ClassVar[bool] = False  # fit() trains a model (epochs, progress, fit time)
    candidate: ClassVar[bool] = True  # reward selection (--method auto --select reward) tries it by default
    params: ClassVar[tuple[Param, ...]] = ()  # the hyper-parameters it takes, with defaults

    def __init__(self, horizon: int = DEFAULT_HORIZON, **hparams):
        names = [p.name for p in self.params]
        unknown = sorted(set(hparams) - set(names))
        if unknown:
            raise PredictorError(f"unknown {self.name} hyper-parameter(s): {', '.join(unknown)}",
                                 hint=f"{self.name} takes: {', '.join(names) or 'none'}.")
        self.horizon = horizon
        self.hparams = {**{p.name: p.default for p in self.params}, **hparams}
        for p in self.params:
            if p.choices and self.hparams[p.name] not in p.choices:
                raise PredictorError(f"{p.name} must be one of {', '.join(p.choices)}, not {self.hparams[p.name]!r}")
        self.fit_info: dict = {}

    @classmethod
    def accepts(cls, hparams: dict) -> dict:
        """The entries of a flat settings dict that this method declares (the rest are other methods')."""
        names = {p.name for p in cls.params}
        return {k: v for k, v in hparams.items() if k in names}

    @classmethod
    def planned_epochs(cls, hparams: dict) -> int:
        """Training epochs a fit with these settings runs at most (0: nothing to train)."""
        return 0

    def warm_from(self, previous: Predictor) -> None:
        """Start the next `fit` from ``previous`` (a fit of the same method on an earlier part of the
        run) where that helps; methods that do not train ignore it."""
        return None

    def fit(self, traj: Trajectories | None, steps: list[int], progress: Callable[[], None] | None = None) -> Predictor:
        """Learn from the run's history (checkpoints ``steps``); cheap methods only record the steps.
        ``progress`` is called once per training epoch by methods that train."""
        self.fit_info.setdefault("steps", list(steps))
        return self

    @abstractmethod
    def predict(self, ctx: ModuleContext) -> Prediction:
        """Ŵ(α) for one module from its checkpoints up to index ``ctx.last``."""

    def sign_reference(self, name: str, steps: list[int]) -> tuple[int, torch.Tensor] | None:
        """(checkpoint index, canonical global u there) kept from the fit, so the rank-1 trajectory
        of ``name`` can start at that checkpoint with the fit's signs (None: start at the first)."""
        return None

    def predict_many(self, contexts: list[ModuleContext]) -> list[Prediction]:
        """`predict` for many modules (methods with shared weights batch them)."""
        return [self.predict(ctx) for ctx in contexts]

    def horizon_steps(self, steps: list[int]) -> float:
        """How many training steps α = 1 stands for, on a run with these checkpoint steps."""
        return float(steps[-1] - steps[-2]) if len(steps) > 1 else float(steps[-1])

    def coef_for_step(self, target_step: float, steps: list[int]) -> float:
        """α that predicts the weights at ``target_step`` from the last checkpoint."""
        if target_step < steps[-1]:
            raise PredictorError(
                f"--to-step {target_step:g} is before the last checkpoint (step {steps[-1]})",
                hint="Extrapolation goes forward: pass a later step.",
            )
        return self.coef_for_ahead(target_step - steps[-1], steps)

    def coef_for_ahead(self, ahead: float, steps: list[int]) -> float:
        """α for "``ahead`` training steps past the last checkpoint" (α is this method's own unit)."""
        return ahead / self.horizon_steps(steps)

    def ahead_for_coef(self, coef: float, steps: list[int]) -> float:
        """Training steps past the last checkpoint that α stands for."""
        return coef * self.horizon_steps(steps)

    # -- persistence: JSON-able state plus named tensors (saved as safetensors, never pickled)
    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        return {"horizon": self.horizon, "hparams": self.hparams, "fit_info": self.fit_info}, {}

    def load_state(self, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.fit_info = meta.get("fit_info", {})
