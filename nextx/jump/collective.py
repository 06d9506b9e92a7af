"""`Collective`: how the processes of one training run agree on a jump.

Rank 0 decides (it alone fits and scores) and broadcasts the decision — the jump's record and every
module's change — and every rank applies the identical change, so ranks cannot diverge by
construction. `SingleProcess` is the default; `TorchCollective` uses the initialised
`torch.distributed` process group (gloo on CPU, NCCL on GPU), as DDP, FSDP and DeepSpeed set it up.
"""

from __future__ import annotations

from typing import Protocol


class Collective(Protocol):
    rank: int
    world_size: int

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""


class SingleProcess:
    rank, world_size = 0, 1

    def broadcast(self, obj):
        return obj


class TorchCollective:
    """The default `torch.distributed` process group."""

    def __init__(self):
        import torch.distributed as dist

        self.dist = dist
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def broadcast(self, obj):
        holder = [obj]
        self.dist.broadcast_object_list(holder, src=0)
        return holder[0]


def current_collective() -> Collective:
    """`TorchCollective` when a process group of several ranks is initialised, else `SingleProcess`."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return TorchCollective()
    return SingleProcess()
