"""Training extra (`pip install 'nextx[train]'`): reference GRPO trainer with NExt in the loop.

    from nextx.train import GRPORunConfig, NExtCallback, train
"""

from nextx.train.callback import NExtCallback
from nextx.train.config import GRPORunConfig
from nextx.train.grpo import train

__all__ = ["GRPORunConfig", "NExtCallback", "train"]
