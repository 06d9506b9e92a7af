"""nextx: NExt rank-1 trajectory modelling for RLVR runs (arXiv 2604.11446).

    run = nextx.load_run("runs/grpo")                  # any trainer's checkpoints, or "hf://org/run"
    traj = nextx.trajectories(run, horizon=5)          # exact, sign-consistent rank-1 series
    report = nextx.backtest(run, holdout=3)            # which method predicts this run best?
    predictor = nextx.fit(run, "next", horizon=5, traj=traj)
    nextx.extrapolate(run, predictor, ahead=50, traj=traj).save_adapter("runs/grpo-next")   # 50 steps ahead
    choice = nextx.choose_jump(run, method="auto", select="reward", scorer=my_scorer)  # or no jump at all
"""

__version__ = "0.1.0"

from nextx.backtest import backtest  # noqa: E402
from nextx.choose import JumpChoice, choose_jump  # noqa: E402
from nextx.errors import NextxError  # noqa: E402
from nextx.extrapolate import extrapolate  # noqa: E402
from nextx.fit import fit, load_predictor, save_predictor  # noqa: E402
from nextx.io.hub import pull  # noqa: E402
from nextx.io.run import Run, load_run  # noqa: E402
from nextx.lowrank import top_singular_triplet  # noqa: E402
from nextx.trajectory import Trajectories, trajectories  # noqa: E402

__all__ = [
    "JumpChoice", "NextxError", "Run", "Trajectories", "__version__", "backtest", "choose_jump", "extrapolate", "fit",
    "load_predictor", "load_run", "pull", "save_predictor", "top_singular_triplet", "trajectories",
]
