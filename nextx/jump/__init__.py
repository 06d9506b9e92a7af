"""The trainer-neutral jump engine: NExt in the loop of any trainer.

`JumpEngine` owns what a jump is decided from (the history of LoRA factors, recorded live at each
checkpoint or read from a run on disk), the accumulated base offsets, the decision
(`nextx.choose.choose_jump`), the pace (`JumpPace`) and the record of every jump. It touches the
training process only through `LiveModel` (read a module's LoRA factors, add a factored term to a
base weight, write factors, reset the optimizer's moments); `PeftLiveModel` implements it for a
PEFT model in the training process. A trainer integration (`nextx.train.callback.NExtCallback` for
transformers/TRL) is a thin adapter: call ``engine.observe`` and ``engine.maybe_jump`` after a save.
"""

from nextx.jump.engine import JumpEngine
from nextx.jump.history import FactorHistory
from nextx.jump.live import LiveModel, PeftLiveModel
from nextx.jump.pace import JumpPace

__all__ = ["FactorHistory", "JumpEngine", "JumpPace", "LiveModel", "PeftLiveModel"]
