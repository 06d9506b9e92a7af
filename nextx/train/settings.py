"""The settings of a training run, declared once and by concern — GRPO (model, data, RL), the LoRA
adapter, the in-loop jump, the jump's evaluation, DGO — each with its own checks (a reason and a
fix). `nextx.train.config.GRPORunConfig` composes them; `nextx train`'s options, the demo and the
benches derive from the declarations (`knob`). NExt's own settings (``--next-lr``, ``--next-epochs``)
are not declared here: `method_knob` takes them from the predictor's `nextx.predictors.Param`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from nextx.errors import NextxError
from nextx.jump.apply import APPLY_MODES
from nextx.jump.engine import LOOP_HORIZON, LOOP_METHOD, VELOCITIES
from nextx.predictors import REGISTRY
from nextx.train.tasks import TASKS


def knob(default=None, help: str = "", *, flag: str | None = None, minimum: float | None = None,
         maximum: float | None = None, choices: Sequence[str] | None = None, factory=None, path: bool = False):
    """A setting with what `nextx train` needs to offer it (help, flag, bounds, choices)."""
    meta = {"help": help, "flag": flag, "min": minimum, "max": maximum, "choices": choices, "path": path}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def flag_of(setting) -> str:
    """The command-line flag of a setting (a dataclass field made by `knob`)."""
    return setting.metadata["flag"] or "--" + setting.name.replace("_", "-")


def check_choices(settings) -> None:
    """NextxError for a setting outside the choices its knob declares (None: not given), for the Python
    API as the CLI's click.Choice does."""
    from dataclasses import fields

    for setting in fields(settings):
        choices, value = setting.metadata.get("choices"), getattr(settings, setting.name)
        if choices and value is not None and value not in choices:
            raise NextxError(f"unknown {flag_of(setting)} {value!r}", hint=f"Choose one of: {', '.join(choices)}.")


def method_knob(method: str, name: str):
    """``--next-NAME``: a predictor's own `Param` (default, help, parsing) offered as a jump setting."""
    param = next(p for p in REGISTRY[method].params if p.name == name)
    meta = {"help": param.help, "flag": f"--next-{name.replace('_', '-')}", "min": None, "max": None, "choices": None,
            "path": False, "param": param}
    return field(default=param.default, metadata=meta)


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class GRPOSettings:
    """The model, the data and GRPO itself. Defaults are the embedded default's (tiny model, CPU)."""

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
    epsilon_high: float | None = knob(None, "Clip-higher: the upper clip ε (default: TRL's ε = 0.2; DGO: 0.28).",
                                      minimum=0)
    seed: int = knob(0, "Random seed (data order, sampling, init).")
    save_state: bool = knob(False, "Also save the optimizer, scheduler and RNG state in every checkpoint (what "
                            "--resume needs).")
    num_iterations: int = knob(1, "GRPO updates per rollout batch (TRL's μ; each update is one step).", minimum=1)

    def check_grpo(self) -> None:
        if self.task is None and self.dataset is None:
            raise NextxError("give a built-in --task or a --dataset")
        if self.num_generations < 2:
            raise NextxError(f"--num-generations {self.num_generations} gives GRPO no group to compare",
                             hint="Use at least 2 (8 is typical).")
        if self.save_every < 1 or self.steps < 1:
            raise NextxError("--steps and --save-every must be positive")
        if self.verifier not in ("exact", "math"):
            raise NextxError(f"unknown verifier {self.verifier!r}", hint="Choose exact or math.")
        if self.verifier == "math":
            import importlib.util

            if importlib.util.find_spec("math_verify") is None:
                raise NextxError("--verifier math needs the math-verify package", hint="pip install math-verify")

    def check_model(self) -> None:
        """The model given is a directory or a Hub id (checked after the other settings)."""
        if self.task is None and self.model is None:
            raise NextxError("--dataset needs --model: the embedded tiny model knows only the built-in tasks",
                             hint="Pass --model PATH or a Hub id (OWNER/NAME).")
        if self.task in TASKS and TASKS[self.task].needs_pretrained and self.model is None:
            raise NextxError(f"--task {self.task} is asked in chat format, which the embedded tiny model cannot read",
                             hint="Pass --model: a pretrained chat model, e.g. $(nextx fetch-llm).")
        if self.model is not None:
            from pathlib import Path

            from nextx.io.hub import HUB_ID, is_hub_url

            if not (Path(self.model).is_dir() or is_hub_url(self.model) or HUB_ID.fullmatch(self.model)):
                raise NextxError("--model is neither a model directory nor a Hub id (OWNER/NAME)", path=self.model,
                                 hint="Check the path, or pass the Hub id of the base model.")


@dataclass
class AdapterSettings:
    """The LoRA adapter trained (or the one training starts from)."""

    lora_r: int = knob(8, "LoRA rank.", minimum=1)
    lora_alpha: float = knob(16, "LoRA alpha.")
    lora_targets: list[str] = knob(help="Comma-separated target modules.", factory=lambda: list(LORA_TARGETS))
    init_adapter: str | None = knob(None, "Start from this adapter.", path=True)

    def check_adapter(self) -> None:
        if not [t for t in self.lora_targets if t.strip()]:
            raise NextxError("--lora-targets names no module", hint="E.g. --lora-targets q_proj,v_proj, or all-linear.")
        if self.init_adapter is not None:
            from pathlib import Path

            if not (Path(self.init_adapter) / "adapter_config.json").is_file():
                raise NextxError("--init-adapter is not a PEFT adapter directory (no adapter_config.json)",
                                 path=self.init_adapter, hint="Pass a directory written by nextx extrapolate or PEFT.")


@dataclass
class JumpSettings:
    """NExt in the loop (`nextx.jump.JumpEngine`): when, how far, how."""

    next_at: int | None = knob(None, "Jump after this step (a checkpoint step).", minimum=1)
    next_every: int | None = knob(None, "…and again every N steps (default: at every checkpoint; 0: once).", minimum=0)
    next_method: str = knob(LOOP_METHOD, "Jump method, or auto.", flag="--method",
                            choices=(*(m for m in REGISTRY if m != "stay"), "auto"))
    next_ahead: float | str | None = knob(None, "Training steps past the checkpoint, or auto (default: one checkpoint "
                                          "interval).")
    next_horizon: int = knob(LOOP_HORIZON, "NExt's target horizon, in checkpoints.", flag="--horizon", minimum=1)
    next_lr: float = method_knob("next", "lr")
    next_epochs: int | str = method_knob("next", "epochs")
    next_cap: float | None = knob(1.0, "Trust region: each jump ≤ this × the last checkpoint interval's update, "
                                  "per module (0: none).", minimum=0)
    next_apply: str = knob("offset", "offset: into the frozen base (exact, Adam kept); refactor: into the rank-r "
                           "LoRA (Adam reset); merge: LoRA and jump merged into the base, fresh LoRA and Adam.",
                           choices=APPLY_MODES)
    next_damping: float = knob(1.0, "With --next-every: the k-th jump goes damping^k × --next-ahead.", minimum=0,
                               maximum=1)
    next_velocity: str | None = knob(None, "What a jump extrapolates: the whole path (total) or the training's own "
                                     "(trained: without earlier jumps, so frequent jumps do not feed on themselves; "
                                     "the default, except with --next-apply merge).", choices=VELOCITIES)
    next_adaptive: bool = knob(False, "Adaptive pace: after each jump, grow the next ones ×1.5 when training went "
                               "on as predicted (ρ ≥ 0.5), shrink them ×0.5 when it turned back (ρ < 0).")
    next_warm: bool = knob(False, "Start each jump's predictor fit from the previous jump's (NExt's MLPs): with "
                           "frequent jumps, far fewer --next-epochs suffice.")
    next_verify: int = knob(0, "Verify each jump on the on-policy reward of the next N steps against the N before; "
                            "undo it exactly when the reward fell by more than 2 SE (0: off).", minimum=0)

    def jump_every(self) -> int | None:
        """Steps between jumps: as given (0: none after the first), else one checkpoint interval."""
        every = self.save_every if self.next_every is None else self.next_every
        return every or None

    def jump_ahead(self) -> float | str | None:
        """Steps ahead: as given, else one checkpoint interval (reward selection: None, its grid)."""
        if self.next_ahead is None and self.next_select != "reward":
            return float(self.save_every)
        return self.next_ahead

    def jump_velocity(self) -> str:
        """As given, else the training's own path ("trained"; "total" for merge jumps, which restart it)."""
        return self.next_velocity or ("total" if self.next_apply == "merge" else "trained")

    def jump_cap(self) -> float | None:
        return self.next_cap or None

    def method_hparams(self) -> dict:
        """The predictors' own settings given as ``--next-*`` (flat; each method takes what it declares)."""
        return {f.metadata["param"].name: getattr(self, f.name) for f in _method_fields(type(self))}

    def check_jump(self) -> None:
        for f in _method_fields(type(self)):
            _check_param(f.metadata["flag"], f.metadata["param"], getattr(self, f.name))
        if self.next_at is not None:
            if self.next_at % self.save_every:
                raise NextxError(f"--next-at {self.next_at} is not a multiple of --save-every {self.save_every}",
                                 hint="NExt jumps right after a checkpoint is saved.")
            method, saved = REGISTRY.get(self.next_method), self.next_at // self.save_every
            if saved < self.next_horizon + 1 and method is not None and method.needs_trajectories:
                raise NextxError(
                    f"--next-at {self.next_at} leaves {saved} checkpoints, NExt with "
                    f"horizon {self.next_horizon} needs {self.next_horizon + 1}",
                    hint="Jump later, save more often, or lower the horizon.",
                )
            if saved < 2:
                raise NextxError(f"--next-at {self.next_at} leaves 1 checkpoint: a jump needs the motion between two",
                                 hint="Jump later, or save more often.")
            if self.next_every and self.next_every % self.save_every:
                raise NextxError(f"--next-every {self.next_every} is not a multiple of --save-every {self.save_every}",
                                 hint="Jumps come right after a checkpoint is saved.")
        if self.next_apply not in APPLY_MODES:
            raise NextxError(f"unknown --next-apply {self.next_apply!r}", hint="Choose offset, refactor or merge.")
        if self.next_velocity == "trained" and self.next_apply == "merge":
            raise NextxError("--next-velocity trained reads the LoRA's own path, which --next-apply merge restarts",
                             hint="Use --next-apply offset (or --next-velocity total).")
        if (self.next_adaptive or self.next_verify) and self.next_apply != "offset":
            raise NextxError("--next-adaptive and --next-verify measure offset jumps", hint="Use --next-apply offset.")
        if not 0 < self.next_damping <= 1:
            raise NextxError(f"--next-damping {self.next_damping:g} is outside (0, 1]",
                             hint="1 keeps every jump's length; 0.875 shortens each later jump by 12.5%.")
        if isinstance(self.next_ahead, str) and self.next_ahead != "auto":
            raise NextxError(f"--next-ahead {self.next_ahead!r} is neither a number of steps nor 'auto'")
        if isinstance(self.next_ahead, float | int) and self.next_ahead < 0:
            raise NextxError(f"--next-ahead {self.next_ahead:g} is negative", hint="Jumps go forward: steps ≥ 0.")


def _method_fields(cls) -> list:
    from dataclasses import fields

    return [f for f in fields(cls) if "param" in f.metadata]


def _check_param(flag: str, param, value) -> None:
    """NextxError unless ``value`` is what the predictor's `Param` would parse from its own text."""
    text = str(value)
    try:
        ok = not isinstance(value, bool) and param.from_text(text) == value
        reason = "is not a valid value"
    except ValueError as err:
        ok, reason = False, str(err).removeprefix(repr(text)).strip()
    if not ok:
        shown = repr(value) if isinstance(value, str) else value
        raise NextxError(f"{flag} {shown} {reason}")


@dataclass
class LookaheadSettings:
    """The in-loop look-ahead peers the jumps are measured against (`nextx.train.reposition`)."""

    lookahead: int | None = knob(None, "Lookahead (Zhang et al. 2019): every K steps the slow weights move α of the "
                                 "way to the fast ones and training restarts from them.", minimum=1)
    lookahead_alpha: float = knob(0.5, "Lookahead's α.", minimum=0, maximum=1)
    sfpo: int | None = knob(None, "SFPO (arXiv 2510.04072): K fast steps on each rollout batch, reposition α of the "
                            "way from the batch's start, one slow step (K + 1 updates per rollout batch).", minimum=1)
    sfpo_alpha: float = knob(0.8, "SFPO's reposition α.", minimum=0, maximum=1)

    def check_lookahead(self) -> None:
        if self.lookahead and self.sfpo:
            raise NextxError("--lookahead and --sfpo both reposition the weights: choose one")
        if self.sfpo and self.num_iterations not in (1, self.sfpo + 1):
            raise NextxError(f"--sfpo {self.sfpo} takes {self.sfpo + 1} updates per rollout batch, not "
                             f"--num-iterations {self.num_iterations}", hint="Leave --num-iterations out with --sfpo.")
        for name, alpha in (("--lookahead-alpha", self.lookahead_alpha), ("--sfpo-alpha", self.sfpo_alpha)):
            if not 0 <= alpha <= 1:
                raise NextxError(f"{name} {alpha:g} is outside [0, 1]", hint="0 stays at the slow weights, 1 keeps "
                                 "the fast ones.")

    def updates_per_rollout(self) -> int:
        """Optimizer steps per rollout batch: SFPO's K + 1, else ``num_iterations``."""
        return self.sfpo + 1 if self.sfpo else self.num_iterations


@dataclass
class EvalSettings:
    """How a jump is evaluated before it is made."""

    next_select: str = knob("weights", "reward: jump only if a candidate beats staying on the task's validation "
                            "prompts.", choices=("weights", "reward"))
    next_eval_size: int = knob(500, "Validation prompts per candidate with --next-select reward.", minimum=10)

    def check_eval(self) -> None:
        if self.next_select not in ("weights", "reward"):
            raise NextxError(f"unknown --next-select {self.next_select!r}", hint="Choose weights or reward.")
        if self.next_select == "reward" and self.task is None:
            raise NextxError("--next-select reward needs a built-in --task (its verifier scores the candidates)",
                             hint="Use --next-select weights, or NExtCallback(select='reward', scorer=...) in Python.")


@dataclass
class DGOSettings:
    """DGO (arXiv 2603.24093): ``steps`` is per iteration; defaults are the paper's where it gives them."""

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
    dgo_ablate: str = knob("none", "Remove one component (the paper's Table 3, plus rft): annealing (the guided share "
                           "stays at its first value), renewal (the bank never changes), rephrasing (distil the "
                           "guided trajectories only), distillation (the next iteration starts from the RL policy), "
                           "or rft: no experiences at all, the same SFT on the policy's right answers to plain "
                           "prompts.", choices=("none", "annealing", "renewal", "rephrasing", "distillation", "rft"))
    dgo_prompt: str = knob("auto", "Prompt style: compact (the tiny models) or instruct; auto: compact for the "
                           "embedded model.", choices=("auto", "compact", "instruct"))

    def check_dgo(self) -> None:
        if self.algo != "dgo":
            return
        if self.dgo_generator == "rules" and self.task not in ("addition", None):
            raise NextxError(f"the rule-based experience generator knows the addition task, not {self.task!r}",
                             hint="Use --task addition, or --dgo-generator MODEL (a causal LM that writes experiences).")
        self.schedule()

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
