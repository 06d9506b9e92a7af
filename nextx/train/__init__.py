"""Training extra (`pip install 'nextx[train]'`): reference GRPO trainer with NExt in the loop.

    from nextx.train import GRPORunConfig, NExtCallback, train
"""
