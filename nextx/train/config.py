"""`GRPOSettings`: every knob of a GRPO + LoRA run, declared once; `GRPORunConfig` adds where the run
is written and validates it (a reason and a fix); the demo's `DemoConfig` builds on the same settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from nextx.errors import NextxError
from nextx.predictors import DEFAULT_METHOD, REGISTRY
from nextx.train.tasks import TASKS


def knob(default=None, help: str = "", *, flag: str | None = None, minimum: float | None = None,
         maximum: float | None = None, choices: Sequence[str] | None = None, factory=None, path: bool = False):
    """A GRPO setting with what `nextx train` needs to offer it (help, flag, bounds, choices)."""
    meta = {"help": help, "flag": flag, "min": minimum, "max": maximum, "choices": choices, "path": path}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class GRPOSettings:
    """The knobs of a GRPO + LoRA run, declared once: `nextx train`'s options, the demo and the bench
    derive from them. Defaults are the embedded default's (tiny model, CPU): see README."""

    model: str | None = knob(None, "Local path or Hub id (default: the embedded tiny model).")
    task: str | None = knob("addition", "Built-in task (none with --dataset).", choices=tuple(TASKS))
    dataset: str | None = knob(None, "Local file (json/jsonl/csv/parquet) or Hub id with prompt/answer columns.")
    prompt_column: str = knob("prompt", "Prompt column of --dataset.")
    answer_column: str = knob("answer", "Answer column of --dataset.")
    verifier: str = knob("exact", "Reward: exact answer match, or math (math-verify).", choices=("exact", "math"))
    steps: int = knob(300, "GRPO steps.", minimum=1)
    save_every: int = knob(20, "A checkpoint every N steps.", minimum=1)
    learning_rate: float = knob(3e-4, "LoRA learning rate (constant).", flag="--lr", minimum=0)
    prompts_per_step: int = knob(16, "Prompts per GRPO step.", minimum=1)
    num_generations: int = knob(8, "Completions per prompt (the group).", minimum=2)
    max_completion_length: int = knob(4, "Tokens per completion.", minimum=1)
    temperature: float = knob(1.0, "Sampling temperature.", minimum=0)
    beta: float = knob(0.0, "KL coefficient.", minimum=0)
    loss_type: str = knob("dapo", "TRL loss_type.")
    lora_r: int = knob(8, "LoRA rank.", minimum=1)
    lora_alpha: float = knob(16, "LoRA alpha.")
    lora_targets: list[str] = knob(help="Comma-separated target modules.", factory=lambda: list(LORA_TARGETS))
    seed: int = knob(0, "Random seed (data order, sampling, init).")
    init_adapter: str | None = knob(None, "Start from this adapter.", path=True)
    # NExt in the loop
    next_at: int | None = knob(None, "Jump after this step (a checkpoint step).", minimum=1)
    next_every: int | None = knob(None, "…and again every N steps.", minimum=1)
    next_method: str = knob(DEFAULT_METHOD, "Jump method, or auto.", flag="--method",
                            choices=(*(m for m in REGISTRY if m != "stay"), "auto"))
    next_ahead: float | str | None = knob(None, "Training steps past the checkpoint, or auto (default: one horizon).")
    next_horizon: int = knob(3, "NExt's target horizon, in checkpoints.", flag="--horizon", minimum=1)
    next_lr: float | None = knob(None, "NExt predictor learning rate (default: the paper's 2e-5).", minimum=0)
    next_epochs: int | str = knob(1000, "NExt training epochs per jump (the paper's 1000), or auto (stop once 50 "
                                  "epochs improve the loss by < 0.1%).")
    next_select: str = knob("weights", "reward: jump only if a candidate beats staying on the task's validation "
                            "prompts.", choices=("weights", "reward"))
    next_eval_size: int = knob(500, "Validation prompts per candidate with --next-select reward.", minimum=10)
    next_cap: float | None = knob(None, "Trust region: each jump ≤ this × the last checkpoint interval's update, "
                                  "per module.", minimum=0)
    next_apply: str = knob("offset", "offset: into the frozen base (exact, Adam kept); refactor: into the rank-r "
                           "LoRA (Adam reset); merge: LoRA and jump merged into the base, fresh LoRA and Adam.",
                           choices=("offset", "refactor", "merge"))
    next_damping: float = knob(1.0, "With --next-every: the k-th jump goes damping^k × --next-ahead.", minimum=0,
                               maximum=1)
    epsilon_high: float | None = knob(None, "Clip-higher: the upper clip ε (default: TRL's ε = 0.2; DGO: 0.28).",
                                      minimum=0)
    # DGO (arXiv 2603.24093): `steps` is per iteration; defaults are the paper's where it gives them
    algo: str = knob("grpo", "grpo, or dgo: K iterations of GRPO on experience-guided prompts, bank renewal and "
                     "rewrite + SFT from the base.", choices=("grpo", "dgo"))
    dgo_iterations: int = knob(3, "DGO iterations K.", minimum=1)
    dgo_schedule: str = knob("1.0,0.5,0.25", "Share of experience-guided prompts per iteration (the last repeats).")
    dgo_experiences: int = knob(1, "Experiences retrieved per guided prompt.", minimum=1)
    dgo_similarity: float = knob(0.8, "Renewal: a new experience below this cosine similarity to the bank is an "
                                 "addition, else a replacement of its nearest entry.", minimum=0, maximum=1)
    dgo_validation_size: int = knob(200, "Validation prompts scoring each renewal candidate.", minimum=10)
    dgo_candidates: int = knob(16, "New experiences tried per renewal (each costs one validation pass).", minimum=0)
    dgo_initial: int = knob(64, "Training problems the base model answers to build the first bank.", minimum=1)
    dgo_top_k: int = knob(2, "Rewrites (and guided trajectories) kept per problem.", minimum=1)
    dgo_beta: float = knob(0.5, "Share of rewrites in the distillation data (the rest: guided trajectories).",
                           minimum=0, maximum=1)
    dgo_sft_lr: float = knob(1e-3, "Distillation SFT learning rate (paper: 1e-6 on 4–14B models).", minimum=0)
    dgo_sft_epochs: int = knob(4, "Distillation SFT epochs.", minimum=1)
    dgo_sft_batch: int = knob(64, "Distillation SFT batch size (paper: 128).", minimum=1)
    dgo_max_rewrite_chars: int = knob(6000, "Rewrites longer than this are dropped.", minimum=1)
    dgo_generator: str = knob("rules", "Experience generator: rules (the embedded tasks') or a causal LM path / Hub "
                              "id prompted to extract one WHEN … IF … THEN … line.")
    dgo_retriever: str = knob("tfidf", "Similarity vectors: tfidf (character n-grams, no download) or a sentence "
                              "encoder's path / Hub id (e.g. sentence-transformers/all-MiniLM-L6-v2).")
    dgo_prompt: str = knob("auto", "Prompt style: compact (the tiny models) or instruct; auto: compact for the "
                           "embedded model.", choices=("auto", "compact", "instruct"))


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
        if self.next_epochs != "auto" and (isinstance(self.next_epochs, bool) or not isinstance(self.next_epochs, int)
                                           or self.next_epochs < 1):
            raise NextxError(f"--next-epochs {self.next_epochs!r} is neither a positive number of epochs nor 'auto'")
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
        if self.algo == "dgo":
            self._check_dgo()
        if self.init_adapter is not None:
            from pathlib import Path

            if not (Path(self.init_adapter) / "adapter_config.json").is_file():
                raise NextxError("--init-adapter is not a PEFT adapter directory (no adapter_config.json)",
                                 path=self.init_adapter, hint="Pass a directory written by nextx extrapolate or PEFT.")
        if self.steps < self.save_every:
            raise NextxError(f"--steps {self.steps} is less than --save-every {self.save_every}: the run would save "
                             "no checkpoint", hint=f"Use --save-every {self.steps} or less.")

    def _check_dgo(self) -> None:
        if self.task is None:
            raise NextxError("--algo dgo needs a built-in --task (its verifier scores renewal candidates and rewrites)",
                             hint=f"Choose one of: {', '.join(TASKS)}.")
        if self.dgo_generator == "rules" and self.task != "addition":
            raise NextxError(f"the rule-based experience generator knows the addition task, not {self.task!r}",
                             hint="Use --task addition, or --dgo-generator MODEL (a causal LM that writes experiences).")
        self.schedule()

    def clip_high(self) -> float | None:
        """The upper clip ε: as given, else DGO's 0.28 (the paper's clip-higher), else TRL's default (= ε)."""
        if self.epsilon_high is not None:
            return self.epsilon_high
        return 0.28 if self.algo == "dgo" else None

    def schedule(self) -> tuple[float, ...]:
        """DGO's experience shares α_1…α_K parsed from ``dgo_schedule``."""
        try:
            shares = tuple(float(v) for v in self.dgo_schedule.split(",") if v.strip())
        except ValueError:
            shares = ()
        if not shares or not all(0 <= a <= 1 for a in shares):
            raise NextxError(f"--dgo-schedule {self.dgo_schedule!r} is not a comma-separated list of shares in [0, 1]",
                             hint="The paper's: --dgo-schedule 1.0,0.5,0.25")
        return shares

    def _needs_trajectories(self) -> bool:
        method = REGISTRY.get(self.next_method)
        return method is not None and method.needs_trajectories

    def to_dict(self) -> dict:
        return {"output_dir": self.output_dir, **{k: v for k, v in asdict(self).items() if k != "output_dir"}}
