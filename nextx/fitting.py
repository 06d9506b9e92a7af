"""`fit`: fit a predictor on a run's history; save / load it as safetensors + JSON (no pickle)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from nextx._version import __version__
from nextx.errors import CheckpointError, PredictorError
from nextx.io.discover import require_checkpoints
from nextx.io.jsonfile import read_json
from nextx.io.run import Run
from nextx.io.write import atomic_output_dir, write_json
from nextx.predictors import REGISTRY, Predictor, make_predictor, trajectory_device
from nextx.trajectory import DEFAULT_HORIZON, Trajectories, trajectories

PREDICTOR_JSON = "predictor.json"
PREDICTOR_TENSORS = "predictor.safetensors"


def method_trajectories(run: Run, method: str, horizon: int, hparams: dict,
                        progress: Callable[[str], None] | None = None) -> Trajectories | None:
    """The rank-1 trajectories ``method`` fits on (None for a method that needs none), computed on
    the device its settings name (NExt's ``device``)."""
    if not REGISTRY[method].needs_trajectories:
        return None
    return trajectories(run, horizon=horizon, progress=progress, device=trajectory_device({method: hparams}))


def fit(
    run: Run,
    method: str = "next",
    *,
    horizon: int = DEFAULT_HORIZON,
    traj: Trajectories | None = None,
    progress: Callable[[str], None] | None = None,
    epoch_progress: Callable[[], None] | None = None,
    init: Predictor | None = None,
    **hparams,
) -> Predictor:
    """Fit ``method`` on all checkpoints of ``run`` (NExt: on every (G_t, L_t) → T_t pair), starting
    from ``init`` (an earlier fit of the same method) where the method can. ``progress(module)``
    follows the trajectories, ``epoch_progress()`` the training epochs."""
    predictor = make_predictor(method, horizon=horizon, **hparams)
    if init is not None:
        predictor.warm_from(init)
    require_checkpoints(len(run.steps), horizon + 1 if predictor.needs_trajectories else 2, f"fitting {method}")
    if traj is None:
        traj = method_trajectories(run, method, horizon, hparams, progress)
    predictor.fit(traj, run.steps, progress=epoch_progress)
    predictor.fit_info["modules"] = {name: list(spec.shape) for name, spec in run.modules.items()}
    predictor.fit_info["source"] = run.source
    return predictor


def save_predictor(predictor: Predictor, out: str | Path, *, force: bool = False) -> Path:
    """Write predictor.json (method, hyper-parameters, steps, groups, loss curve) + predictor.safetensors."""
    meta, tensors = predictor.state()
    with atomic_output_dir(out, force=force) as tmp:
        write_json(tmp / PREDICTOR_JSON, {"method": predictor.name, "nextx_version": __version__, **meta})
        save_file(tensors, tmp / PREDICTOR_TENSORS, metadata={"method": predictor.name})
    return Path(out)


def load_predictor(directory: str | Path) -> Predictor:
    """Read a predictor written by `save_predictor`."""
    directory = Path(directory)
    meta_path = directory / PREDICTOR_JSON
    if not meta_path.exists():
        raise PredictorError("not a nextx predictor (no predictor.json)", path=directory,
                             hint="Create one with: nextx fit RUN -o DIR")
    try:
        meta = read_json(meta_path)
        tensors = load_file(directory / PREDICTOR_TENSORS) if (directory / PREDICTOR_TENSORS).exists() else {}
    except (CheckpointError, SafetensorError, OSError) as err:
        raise PredictorError(f"unreadable predictor: {getattr(err, 'message', err)}", path=directory) from None
    method = meta.get("method") if isinstance(meta, dict) else None
    if method not in REGISTRY:
        raise PredictorError(f"unknown predictor method {method!r}", path=directory)
    horizon = meta.get("horizon")
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise PredictorError(f"predictor.json has horizon = {horizon!r}, not a positive integer", path=directory,
                             hint="Refit it with: nextx fit RUN -o DIR")
    predictor = make_predictor(method, horizon=horizon, **dict(meta.get("hparams") or {}))
    predictor.load_state(meta, tensors)
    return predictor


def check_predictor_matches(predictor: Predictor, run: Run) -> None:
    """PredictorError unless the run has the modules and shapes the predictor was fitted on."""
    fitted = predictor.fit_info.get("modules")
    if not fitted:
        return
    for name, spec in run.modules.items():
        if name not in fitted:
            raise PredictorError(
                f"the predictor was fitted on a run without module {name}",
                path=predictor.fit_info.get("source"), hint="Fit a predictor on this run with: nextx fit RUN -o DIR",
            )
        if list(spec.shape) != list(fitted[name]):
            raise PredictorError(
                f"module {name} is {list(spec.shape)} in this run but {fitted[name]} in the predictor's run",
                path=predictor.fit_info.get("source"), hint="Fit a predictor on this run with: nextx fit RUN -o DIR",
            )
