"""Resume GRPO in TRL from an adapter nextx extrapolated.

    nextx train -o runs/grpo --steps 150 --save-every 25
    python examples/resume_in_trl.py "$(nextx extrapolate runs/grpo -o runs/grpo-next --ahead 60 --horizon 3)"

The adapter is loaded with is_trainable=True (without it PEFT trains nothing, silently) and no
peft_config is given to the trainer. The optimizer starts fresh: Adam's moments of the old factors do
not describe the extrapolated ones.
"""

import sys

from nextx.train import GRPORunConfig, train

adapter = sys.argv[1]
config = GRPORunConfig(output_dir="runs/grpo-resumed", init_adapter=adapter, steps=100, save_every=25)
print(train(config).path)
