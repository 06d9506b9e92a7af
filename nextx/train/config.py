"""`RunSettings`: every setting of a training run, composed from the concerns of `nextx.train.settings`;
`GRPORunConfig` adds where the run is written and validates it on creation (each concern's checks,
then the ones across concerns). The demo's `DemoConfig` builds on the same settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from nextx.errors import NextxError
from nextx.train.settings import (
    AdapterSettings,
    DGOSettings,
    EvalSettings,
    GRPOSettings,
    JumpSettings,
    LookaheadSettings,
    check_choices,
)


# dataclass fields are ordered from the last base to the first: GRPO's come first in `nextx train --help`
@dataclass
class RunSettings(DGOSettings, EvalSettings, LookaheadSettings, JumpSettings, AdapterSettings, GRPOSettings):
    """GRPO, adapter, jump, look-ahead peer, evaluation and DGO settings of one run (each declared in its concern)."""

    def clip_high(self) -> float | None:
        """The upper clip ε: as given, else DGO's 0.28 (the paper's clip-higher), else TRL's default (= ε)."""
        if self.epsilon_high is not None:
            return self.epsilon_high
        return 0.28 if self.algo == "dgo" else None


@dataclass(kw_only=True)
class GRPORunConfig(RunSettings):
    """A GRPO + LoRA run written to ``output_dir``, validated on creation."""

    output_dir: str

    def __post_init__(self):
        self.check_grpo()
        self.check_jump()
        self.check_lookahead()
        self.check_eval()
        self.check_dgo()
        self.check_adapter()
        self.check_model()
        check_choices(self)  # after the checks above, which word their own settings' refusals
        if self.steps < self.save_every:
            raise NextxError(f"--steps {self.steps} is less than --save-every {self.save_every}: the run would save "
                             "no checkpoint", hint=f"Use --save-every {self.steps} or less.")

    def to_dict(self) -> dict:
        return {"output_dir": self.output_dir, **{k: v for k, v in asdict(self).items() if k != "output_dir"}}
