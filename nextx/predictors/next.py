"""`next`: the NExt nonlinear predictor (arXiv 2604.11446), faithful to the reference architecture.

For each component s ∈ {u, v, σ} of the rank-1 triplets, inputs at checkpoint t are the global
triplet s^G_t (of W_t − W₀) and the local one s^L_t (of W_t − W_{t−1}); the target is s^T_t of
W_{t+h} − W_t. With d the vector length:

    E_G, E_L: Linear(d,256) → Linear(256,d) → ReLU → Linear(d,256) → Linear(256,d)
    D:        Linear(2d,256) → Linear(256,2d) → ReLU → Linear(2d,256) → Linear(256,d)
    ŝ^T = D([E_G(s^G); E_L(s^L)])

trained with the L1 loss (sum over elements, mean over pairs), AdamW lr 2e-5 with a cosine schedule
to 0.1×lr, 1000 full-batch epochs. One predictor per vector length (all modules whose u — or v —
has that length share it; every σ shares one scalar predictor), or per module type with
``group_by="type"``. Prediction: û, v̂ renormalised, σ̂ ≥ 0, ΔŴ = σ̂·û·v̂ᵀ.

Departures from the reference code, on purpose: signs are canonical (see `nextx.trajectory`), so û
and v̂ agree in orientation; σ is divided by the largest training σ^G of its group (and multiplied
back), so one schedule fits runs of any scale; untrained tensors get no prediction.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable

import torch
from torch import nn

from nextx.devices import DEVICE_HELP, resolve_device
from nextx.errors import PredictorError
from nextx.lowrank import FactoredUpdate
from nextx.predictors.base import ModuleContext, Param, Prediction, Predictor, positive_float, positive_int
from nextx.threads import free_cores
from nextx.trajectory import DEFAULT_HORIZON, Trajectories

AUTO_EPOCHS_MAX = 1000  # epochs="auto": the paper's 1000 at most, fewer once the loss stops improving
AUTO_PATIENCE, AUTO_MIN_GAIN = 50, 1e-3  # … stop when 50 epochs improved the total loss by < 0.1%


REFERENCE_PREFIX = "sign_reference/"


def _encoder(dim: int, hidden: int, out: int | None = None) -> nn.Sequential:
    out = dim if out is None else out
    return nn.Sequential(nn.Linear(dim, hidden), nn.Linear(hidden, dim), nn.ReLU(), nn.Linear(dim, hidden),
                         nn.Linear(hidden, out))


class ComponentPredictor(nn.Module):
    """ŝ^T = D([E_G(s^G); E_L(s^L)]) for vectors of length ``dim``."""

    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.encode_global = _encoder(dim, hidden)
        self.encode_local = _encoder(dim, hidden)
        self.decode = _encoder(2 * dim, hidden, out=dim)

    def forward(self, global_part: torch.Tensor, local_part: torch.Tensor) -> torch.Tensor:
        return self.decode(torch.cat([self.encode_global(global_part), self.encode_local(local_part)], -1))


def _group_key(component: str, name: str, length: int, group_by: str) -> str:
    """'u:3584' (shared by length) or 'u:q_proj:3584' (per module type)."""
    if component == "sigma":
        return "sigma:1" if group_by == "length" else f"sigma:{name.rsplit('.', 1)[-1]}:1"
    if group_by == "type":
        return f"{component}:{name.rsplit('.', 1)[-1]}:{length}"
    return f"{component}:{length}"


def epochs_or_auto(text: str) -> int | str:
    """'auto' or a positive number of epochs (ValueError otherwise)."""
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither a positive number of epochs nor 'auto'") from None


class NExt(Predictor):
    name = "next"
    needs_trajectories = True
    trains = True
    params = (
        Param("lr", 2e-5, "NExt learning rate (the paper's 2e-5; ~3e-4 suits vectors shorter than ~1k).",
              option="--next-lr", parse=positive_float),
        Param("epochs", 1000, "NExt training epochs, or auto (stop once 50 epochs improve the loss by < 0.1%, "
              "≤ 1000).", option="--epochs", parse=epochs_or_auto, metavar="INTEGER|auto"),
        Param("group_by", "length", "NExt: one predictor per vector length (paper) or per module type.",
              option="--group-by", choices=("length", "type")),
        Param("device", "cpu", f"Where NExt trains and the rank-1 trajectories' factor products run: {DEVICE_HELP}.",
              option="--device", parse=str, metavar="DEVICE"),
        Param("fit_dtype", "float32", "Precision of NExt's training matmuls: float32, or bfloat16 autocast (faster "
              "where the hardware has it; the loss curve in predictor.json shows its effect).", option="--fit-dtype",
              choices=("float32", "bfloat16")),
        Param("seed", 0, "Initialisation seed of the MLPs."),
        Param("hidden", 256, "Hidden width of the MLPs (the paper's 256)."),
        Param("min_lr_ratio", 0.1, "Cosine schedule's final lr, as a fraction of lr."),
        Param("weight_decay", 0.01, "AdamW weight decay."),
    )

    @classmethod
    def planned_epochs(cls, hparams: dict) -> int:
        epochs = hparams.get("epochs", next(p.default for p in cls.params if p.name == "epochs"))
        return AUTO_EPOCHS_MAX if epochs == "auto" else int(epochs)

    def __init__(self, horizon: int = DEFAULT_HORIZON, **hparams):
        super().__init__(horizon, **hparams)
        epochs = self.hparams["epochs"]
        if epochs != "auto" and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise PredictorError(f"epochs must be a positive integer or 'auto', not {epochs!r}")
        self.models: dict[str, ComponentPredictor] = {}
        self.sigma_scale: dict[str, float] = {}
        self.reference_u: dict[str, torch.Tensor] = {}  # canonical global u at the last fitted step
        self.warm: dict[str, dict[str, torch.Tensor]] = {}  # group → MLP weights the next fit starts from

    def warm_from(self, previous: Predictor) -> None:
        """The next fit starts each group's MLPs from ``previous``'s (same group and width), not from a
        fresh initialisation: in the loop, the jump before this one is a fit on most of the same pairs."""
        if isinstance(previous, NExt) and previous.hparams["hidden"] == self.hparams["hidden"]:
            self.warm = {key: model.state_dict() for key, model in previous.models.items()}

    def horizon_steps(self, steps: list[int]) -> float:
        spans = [steps[t + self.horizon] - steps[t] for t in range(len(steps) - self.horizon)]
        return float(sum(spans) / len(spans)) if spans else super().horizon_steps(steps) * self.horizon

    # -- training -----------------------------------------------------------------------------
    def _training_sets(self, traj: Trajectories) -> dict[str, list[tuple[torch.Tensor, ...]]]:
        """group key → list of (global, local, target) tensors, one triple per module."""
        groups: dict[str, list[tuple[torch.Tensor, ...]]] = {}
        for name, mt in traj.modules.items():
            pairs = len(mt.target_delta.steps)
            g, loc, tgt = mt.global_delta, mt.local_delta, mt.target_delta
            for component, length in (("u", mt.shape[0]), ("v", mt.shape[1]), ("sigma", 1)):
                key = _group_key(component, name, length, self.hparams["group_by"])
                if component == "sigma":
                    triple = tuple(s.sigma[:pairs].float().unsqueeze(1) for s in (g, loc, tgt))
                else:
                    triple = tuple(getattr(s, component)[:pairs] for s in (g, loc, tgt))
                groups.setdefault(key, []).append(triple)
        return groups

    def fit(self, traj: Trajectories | None, steps: list[int], progress: Callable[[], None] | None = None) -> NExt:
        """Train one ComponentPredictor per group on all (G_t, L_t) → T_t pairs of the run."""
        if traj is None or not traj.modules:
            raise PredictorError("NExt needs the run's rank-1 trajectories")
        pairs = len(next(iter(traj.modules.values())).target_delta.steps)
        if pairs < 1:
            raise PredictorError(
                f"NExt with horizon {self.horizon} needs at least {self.horizon + 1} checkpoints, the run has {len(steps)}",
                hint="Lower --horizon or save checkpoints more often.",
            )
        hp = self.hparams
        device = resolve_device(str(hp["device"]))
        start = time.perf_counter()
        batches = {}
        sets = self._training_sets(traj)
        for index, (key, triples) in enumerate(sorted(sets.items())):
            x_global, x_local, target = (torch.cat(parts) for parts in zip(*triples, strict=True))
            if key.startswith("sigma"):
                scale = float(x_global.abs().max()) or 1.0
                self.sigma_scale[key] = scale
                x_global, x_local, target = x_global / scale, x_local / scale, target / scale
            torch.manual_seed(hp["seed"] * 1000 + index)
            model = ComponentPredictor(x_global.shape[1], hp["hidden"])
            if key in self.warm:
                model.load_state_dict(self.warm[key])
            self.models[key] = model.to(device)
            batches[key] = (x_global.to(device), x_local.to(device), target.to(device))
        # tiny groups run faster on one thread (less synchronisation than arithmetic)
        small = max(x[0].numel() for x in batches.values()) < 2**18
        threads = torch.get_num_threads()
        torch.set_num_threads(1 if small else min(threads, free_cores()))
        try:
            losses = _train(self.models, batches, hp, progress)
        finally:
            torch.set_num_threads(threads)
        self.models = {key: model.cpu() for key, model in self.models.items()}  # predictions run on the CPU
        self.reference_u = {name: mt.global_delta.u[-1].clone() for name, mt in traj.modules.items()}
        self.fit_info = {"steps": list(steps), "pairs": pairs, "fit_seconds": time.perf_counter() - start,
                         "final_loss": {k: v[-1] for k, v in losses.items()}, "loss_curve": losses,
                         "epochs_run": len(next(iter(losses.values()))), "device": str(device),
                         "fit_dtype": hp["fit_dtype"], "warm_groups": sorted(set(self.warm) & set(sets)),
                         "groups": {k: len(v) for k, v in sets.items()}}
        return self

    # -- prediction ---------------------------------------------------------------------------
    def sign_reference(self, name: str, steps: list[int]) -> tuple[int, torch.Tensor] | None:
        fitted_last = self.fit_info.get("steps", [None])[-1]
        if name not in self.reference_u or fitted_last not in steps:
            return None
        return steps.index(fitted_last), self.reference_u[name]

    def predict(self, ctx: ModuleContext) -> Prediction:
        return self.predict_many([ctx])[0]

    @torch.no_grad()
    def predict_many(self, contexts: list[ModuleContext]) -> list[Prediction]:
        """One forward pass per group for all modules (each group's weights are read once)."""
        inputs: dict[str, list[tuple[int, str, torch.Tensor, torch.Tensor]]] = {}
        for k, ctx in enumerate(contexts):
            mt = ctx.trajectory
            if mt is None or mt.local_delta is None:
                raise PredictorError(f"NExt needs the global and local trajectory of {ctx.name}")
            step = ctx.steps[ctx.last]
            if step not in mt.global_delta.steps or step not in mt.local_delta.steps:
                raise PredictorError(f"NExt needs the rank-1 triplets of {ctx.name} at step {step}")
            g_at, l_at = mt.global_delta.steps.index(step), mt.local_delta.steps.index(step)
            for component, length in (("u", mt.shape[0]), ("v", mt.shape[1]), ("sigma", 1)):
                key = _group_key(component, ctx.name, length, self.hparams["group_by"])
                if key not in self.models:
                    raise PredictorError(
                        f"the predictor has no {component} model for {ctx.name} (vector length {length})",
                        hint="It was fitted on a run with other modules or shapes; fit it on this run.",
                    )
                if component == "sigma":
                    scale = self.sigma_scale[key]
                    g = torch.tensor([float(mt.global_delta.sigma[g_at]) / scale])
                    loc = torch.tensor([float(mt.local_delta.sigma[l_at]) / scale])
                else:
                    g, loc = getattr(mt.global_delta, component)[g_at], getattr(mt.local_delta, component)[l_at]
                inputs.setdefault(key, []).append((k, component, g, loc))
        out: list[dict] = [{} for _ in contexts]
        for key, rows in inputs.items():
            predicted = self.models[key](torch.stack([r[2] for r in rows]), torch.stack([r[3] for r in rows]))
            for (k, component, _, _), vec in zip(rows, predicted, strict=True):
                if component == "sigma":
                    out[k][component] = max(float(vec[0]) * self.sigma_scale[key], 0.0)
                else:
                    vec = vec.double()
                    norm = float(vec.norm())
                    out[k][component] = vec / norm if norm > 0 else vec
        return [Prediction(FactoredUpdate(rank1=[(o["sigma"], o["u"], o["v"])])) for o in out]

    # -- persistence --------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        meta, _ = super().state()
        meta["sigma_scale"] = self.sigma_scale
        meta["groups"] = {key: int(model.encode_global[0].in_features) for key, model in self.models.items()}
        tensors = {f"{key}/{param}": value.detach().contiguous() for key, model in self.models.items()
                   for param, value in model.state_dict().items()}
        tensors.update({f"{REFERENCE_PREFIX}{name}": u.contiguous() for name, u in self.reference_u.items()})
        return meta, tensors

    def load_state(self, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
        super().load_state(meta, tensors)
        self.sigma_scale = {k: float(v) for k, v in meta.get("sigma_scale", {}).items()}
        for key, dim in meta["groups"].items():
            model = ComponentPredictor(int(dim), self.hparams["hidden"])
            prefix = f"{key}/"
            model.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
            self.models[key] = model.eval()
        self.reference_u = {k[len(REFERENCE_PREFIX):]: v for k, v in tensors.items() if k.startswith(REFERENCE_PREFIX)}


def _train(models: dict[str, ComponentPredictor], batches: dict[str, tuple[torch.Tensor, ...]], hp: dict,
           progress: Callable[[], None] | None = None):
    """Full-batch AdamW on the L1 loss (sum over elements, mean over pairs), cosine to min_lr_ratio×lr.

    All groups train in one loop with one optimizer: their parameters are disjoint and AdamW is
    per-element, so this equals training each group alone, with less per-step overhead.
    """
    params = [p for model in models.values() for p in model.parameters()]
    try:  # one fused kernel per step (torch ≥ 2.4 on CPU): ~3× less memory traffic than foreach
        optimizer = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=hp["weight_decay"], fused=True)
    except RuntimeError:
        optimizer = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=hp["weight_decay"], foreach=True)
    auto = hp["epochs"] == "auto"
    epochs = AUTO_EPOCHS_MAX if auto else int(hp["epochs"])
    floor = hp["min_lr_ratio"]
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(e, epochs) / epochs))
    )
    curves: dict[str, list[float]] = {key: [] for key in models}
    totals: list[float] = []
    device = next(iter(batches.values()))[0].device
    precision = (torch.autocast(device.type, dtype=torch.bfloat16) if hp["fit_dtype"] == "bfloat16"
                 else contextlib.nullcontext())
    for _ in range(epochs):
        optimizer.zero_grad(set_to_none=True)
        with precision:
            losses = {key: (models[key](g, loc).float() - target).abs().sum(1).mean()
                      for key, (g, loc, target) in batches.items()}
        total = sum(losses.values())
        total.backward()
        optimizer.step()
        schedule.step()
        for key, loss in losses.items():
            curves[key].append(loss.item())
        totals.append(total.item())
        if progress:
            progress()
        if auto and len(totals) > AUTO_PATIENCE and \
                min(totals[-AUTO_PATIENCE:]) > (1 - AUTO_MIN_GAIN) * min(totals[:-AUTO_PATIENCE]):
            break  # the last 50 epochs improved the best loss before them by less than 0.1%
    for model in models.values():
        model.eval()
    return curves
