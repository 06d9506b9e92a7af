"""`GRPOSettings`: every knob of a GRPO + LoRA run, declared once; `GRPORunConfig` adds where the run
is written and validates it (a reason and a fix); the demo's `DemoConfig` builds on the same settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from nextx.errors import NextxError
from nextx.predictors import DEFAULT_METHOD, REGISTRY


@dataclass
class GRPOSettings:
    """The knobs of a GRPO + LoRA run. Defaults are the embedded default's (tiny model, CPU): see README."""

    model: str | None = None  # local path or Hub id; None = the embedded tiny model for `task`
    task: str | None = "addition"  # built-in task, or None with `dataset`
    dataset: str | None = None  # local path (json/jsonl/csv/parquet) or Hub id
    prompt_column: str = "prompt"
    answer_column: str = "answer"
    verifier: str = "exact"  # exact | math (math-verify)
    steps: int = 300
    save_every: int = 20
    learning_rate: float = 3e-4  # smooth, predictable LoRA trajectory on the tiny model (2e-3 is noise-dominated)
    prompts_per_step: int = 16
    num_generations: int = 8
    max_completion_length: int = 4
    temperature: float = 1.0
    beta: float = 0.0
    loss_type: str = "dapo"
    lora_r: int = 8
    lora_alpha: float = 16
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"])
    seed: int = 0
    init_adapter: str | None = None
    # NExt in the loop
    next_at: int | None = None
    next_every: int | None = None
    next_method: str = DEFAULT_METHOD
    next_ahead: float | str | None = None  # steps past the checkpoint, "auto", or None = one horizon
    next_horizon: int = 3
    next_lr: float | None = None  # NExt predictor lr; None = paper's 2e-5 (see README for tiny models)
    next_select: str = "weights"  # weights (as given / backtest) | reward (the task's validation verifier)
    next_eval_size: int = 500  # validation prompts scored per candidate with next_select="reward"
    next_cap: float | None = None  # trust region: jump norm ≤ cap × the last interval's update norm, per module
    next_apply: str = "offset"  # offset (into the base, exact, Adam kept) | refactor (rank-r LoRA, Adam reset)
    # | merge (LoRA merged into the base too, fresh LoRA and Adam)
    next_damping: float = 1.0  # with next_every: the k-th jump goes damping**k × next_ahead


@dataclass(kw_only=True)
class GRPORunConfig(GRPOSettings):
    """A GRPO + LoRA run written to ``output_dir``, validated on creation."""

    output_dir: str

    def __post_init__(self):
        if self.task is None and self.dataset is None:
            raise NextxError("give a built-in --task or a --dataset")
        if self.num_generations < 2:
            raise NextxError(f"--num-generations {self.num_generations} gives GRPO no group to compare",
                             hint="Use at least 2 (8 is typical).")
        if self.save_every < 1 or self.steps < 1:
            raise NextxError("--steps and --save-every must be positive")
        if self.next_at is not None:
            if self.next_at % self.save_every:
                raise NextxError(f"--next-at {self.next_at} is not a multiple of --save-every {self.save_every}",
                                 hint="NExt jumps right after a checkpoint is saved.")
            if self.next_at // self.save_every < self.next_horizon + 1 and self._needs_trajectories():
                raise NextxError(
                    f"--next-at {self.next_at} leaves {self.next_at // self.save_every} checkpoints, NExt with "
                    f"horizon {self.next_horizon} needs {self.next_horizon + 1}",
                    hint="Jump later, save more often, or lower the horizon.",
                )
        if self.next_apply not in ("offset", "refactor", "merge"):
            raise NextxError(f"unknown --next-apply {self.next_apply!r}", hint="Choose offset, refactor or merge.")
        if not 0 < self.next_damping <= 1:
            raise NextxError(f"--next-damping {self.next_damping:g} is outside (0, 1]",
                             hint="1 keeps every jump's length; 0.875 shortens each later jump by 12.5%.")
        if self.next_select not in ("weights", "reward"):
            raise NextxError(f"unknown --next-select {self.next_select!r}", hint="Choose weights or reward.")
        if self.next_select == "reward" and self.task is None:
            raise NextxError("--next-select reward needs a built-in --task (its verifier scores the candidates)",
                             hint="Use --next-select weights, or NExtCallback(select='reward', scorer=...) in Python.")
        if isinstance(self.next_ahead, str) and self.next_ahead != "auto":
            raise NextxError(f"--next-ahead {self.next_ahead!r} is neither a number of steps nor 'auto'")
        if isinstance(self.next_ahead, float | int) and self.next_ahead < 0:
            raise NextxError(f"--next-ahead {self.next_ahead:g} is negative", hint="Jumps go forward: steps ≥ 0.")
        if self.verifier not in ("exact", "math"):
            raise NextxError(f"unknown verifier {self.verifier!r}", hint="Choose exact or math.")
        if self.verifier == "math":
            import importlib.util

            if importlib.util.find_spec("math_verify") is None:
                raise NextxError("--verifier math needs the math-verify package", hint="pip install math-verify")
        if self.init_adapter is not None:
            from pathlib import Path

            if not (Path(self.init_adapter) / "adapter_config.json").is_file():
                raise NextxError("--init-adapter is not a PEFT adapter directory (no adapter_config.json)",
                                 path=self.init_adapter, hint="Pass a directory written by nextx extrapolate or PEFT.")

    def _needs_trajectories(self) -> bool:
        method = REGISTRY.get(self.next_method)
        return method is not None and method.needs_trajectories

    def to_dict(self) -> dict:
        return {"output_dir": self.output_dir, **{k: v for k, v in asdict(self).items() if k != "output_dir"}}
