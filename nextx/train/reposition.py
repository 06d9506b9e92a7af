"""`RepositionCallback`: the look-ahead peers of in-loop jumps, Lookahead and SFPO, for any HF trainer.

Both keep the trainable weights φ at the start of a period of ``period`` optimizer steps and, ``after``
steps into it, pull the fast weights θ back toward them:

    θ ← φ + α·(θ − φ)

* Lookahead (Zhang et al. 2019, "k steps forward, 1 step back"): period = after = k, α = 0.5 — the
  repositioned θ is the next period's φ.
* SFPO (arXiv 2510.04072): each rollout batch is used for K + 1 updates (TRL's ``num_iterations``);
  the first K are the fast trajectory, then θ is repositioned (period K + 1, after K) and the last
  update is the slow correction, taken from the repositioned point on the same batch.

The optimizer's state (Adam's moments) is kept, as both papers do. The edit is element-wise, so it is
the same on every rank of a data-parallel run and on every shard of a sharded one; DeepSpeed keeps its
own fp32 master weights, which this does not reach, so it is refused there.
"""

from __future__ import annotations

import torch
from transformers import TrainerCallback

from nextx.errors import NextxError


class RepositionCallback(TrainerCallback):
    """θ ← φ + α(θ − φ) ``after`` steps into every period of ``period`` steps (φ: θ at the period's start)."""

    def __init__(self, period: int, after: int, alpha: float, log=None):
        if not 1 <= after <= period:
            raise ValueError(f"reposition after {after} steps of a {period}-step period")
        self.period, self.after, self.alpha, self.log = period, after, alpha, log
        self.slow: dict[str, torch.Tensor] | None = None
        self.repositions = 0

    @classmethod
    def lookahead(cls, k: int, alpha: float = 0.5, log=None) -> RepositionCallback:
        return cls(k, k, alpha, log)

    @classmethod
    def sfpo(cls, k: int, alpha: float = 0.8, log=None) -> RepositionCallback:
        return cls(k + 1, k, alpha, log)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if getattr(args, "deepspeed", None):
            raise NextxError("Lookahead and SFPO edit the trainable weights, which DeepSpeed's fp32 master copy would "
                             "overwrite", hint="Run them without DeepSpeed (DDP or FSDP).")
        if state.global_step % self.period and self.log:
            self.log(f"step {state.global_step}: resumed inside a look-ahead period; it restarts from here")
        self.slow = _trainable(model)
        return control

    def on_step_end(self, args, state, control, model=None, **kwargs):
        into = state.global_step % self.period or self.period  # steps done in the current period
        if into == self.after:
            reposition(model, self.slow, self.alpha)
            self.repositions += 1
        if into == self.period:
            self.slow = _trainable(model)
        return control


@torch.no_grad()
def reposition(model, slow: dict[str, torch.Tensor], alpha: float) -> None:
    """θ ← φ + α(θ − φ) for every trainable parameter (φ = ``slow``), in the parameter's own dtype."""
    for name, param in model.named_parameters():
        if name in slow:
            param.copy_(torch.lerp(slow[name].to(param.device, torch.float32), param.float(), alpha))


def _trainable(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().float().clone() for name, p in model.named_parameters() if p.requires_grad}
