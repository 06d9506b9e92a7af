"""nextx: NExt rank-1 trajectory modelling for RLVR runs (arXiv 2604.11446).

    run = nextx.load_run("runs/grpo")             # any trainer's checkpoints
    traj = nextx.trajectories(run, horizon=5)     # exact, sign-consistent rank-1 series
"""

__version__ = "0.1.0"

from nextx.errors import NextxError  # noqa: E402
from nextx.io.run import Run, load_run  # noqa: E402
from nextx.lowrank import top_singular_triplet  # noqa: E402
from nextx.trajectory import Trajectories, trajectories  # noqa: E402

__all__ = ["NextxError", "Run", "Trajectories", "__version__", "load_run", "top_singular_triplet", "trajectories"]
