"""nextx: NExt rank-1 trajectory modelling for RLVR runs (arXiv 2604.11446).

    run = nextx.load_run("runs/grpo")                  # any trainer's checkpoints, or "hf://org/run"
    traj = nextx.trajectories(run, horizon=5)          # exact, sign-consistent rank-1 series
    report = nextx.backtest(run, holdout=3)            # which method predicts this run best?
    predictor = nextx.fit(run, "next", horizon=5, traj=traj)
    nextx.extrapolate(run, predictor, ahead=50, traj=traj).save_adapter("runs/grpo-next")   # 50 steps ahead
    choice = nextx.choose_jump(run, method="auto", select="reward", scorer=my_scorer)  # or no jump at all

The names below are imported on first use (PEP 562), so `import nextx` and the CLI's start-up
stay light until torch is needed.
"""

from __future__ import annotations

from nextx._lazy import lazy_exports
from nextx._version import __version__

_EXPORTS = {  # public name → the module that defines it
    "JumpChoice": "nextx.choose", "choose_jump": "nextx.choose",
    "NextxError": "nextx.errors",
    "backtest": "nextx.backtesting",
    "extrapolate": "nextx.extrapolation",
    "fit": "nextx.fitting", "load_predictor": "nextx.fitting", "save_predictor": "nextx.fitting",
    "pull": "nextx.io.pull",
    "Run": "nextx.io.run", "load_run": "nextx.io.run",
    "top_singular_triplet": "nextx.lowrank",
    "Trajectories": "nextx.trajectory", "trajectories": "nextx.trajectory",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
