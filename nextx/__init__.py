"""nextx: NExt rank-1 trajectory modelling for RLVR runs (arXiv 2604.11446).

    run = nextx.load_run("runs/grpo")                  # any trainer's checkpoints, or "hf://org/run"
    traj = nextx.trajectories(run, horizon=5)          # exact, sign-consistent rank-1 series
    report = nextx.backtest(run, holdout=3)            # which method predicts this run best?
    predictor = nextx.fit(run, "next", horizon=5, traj=traj)
    nextx.extrapolate(run, predictor, ahead=50, traj=traj).save_adapter("runs/grpo-next")   # 50 steps ahead
    choice = nextx.choose_jump(run, method="auto", select="reward", scorer=my_scorer)  # or no jump at all
"""

from nextx._version import __version__
from nextx.backtesting import backtest
from nextx.choose import JumpChoice, choose_jump
from nextx.errors import NextxError
from nextx.extrapolation import extrapolate
from nextx.fitting import fit, load_predictor, save_predictor
from nextx.io.hub import pull
from nextx.io.run import Run, load_run
from nextx.lowrank import top_singular_triplet
from nextx.trajectory import Trajectories, trajectories

__all__ = [
    "JumpChoice", "NextxError", "Run", "Trajectories", "__version__", "backtest", "choose_jump", "extrapolate", "fit",
    "load_predictor", "load_run", "pull", "save_predictor", "top_singular_triplet", "trajectories",
]
