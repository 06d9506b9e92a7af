"""`train`: the reference GRPO trainer (TRL GRPOTrainer + PEFT LoRA), with NExt in the loop.

Checkpoints land in ``output_dir/checkpoint-N`` (TRL layout, adapter only: no optimizer state), so
every other nextx command reads the run. On a GPU it uses bf16, and vLLM when installed; on a CPU,
fp32. Multi-GPU: ``accelerate launch -m nextx.cli.main train ...``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nextx.errors import NextxError
from nextx.io.discover import discover_checkpoints
from nextx.io.offsets import has_offset
from nextx.threads import free_core_threads
from nextx.train.callback import FINAL_ADAPTER, NExtCallback
from nextx.train.clock import SaveClock
from nextx.train.config import GRPORunConfig
from nextx.train.progress import ProgressCallback
from nextx.train.quiet import quiet_transformers
from nextx.train.reposition import RepositionCallback
from nextx.train.runs import load_adapter, refuse_pickled_adapter
from nextx.train.scorer import TaskScorer
from nextx.train.tasks import Task, get_task
from nextx.train.tasks.dataset import load_rows, verifier_score
from nextx.train.tiny_model import tiny_model_path

RECORD_FILE = "nextx-train.json"


def _reward_function(task: Task | None, verifier: str, record: list | None = None):
    """TRL reward: one float per completion, exact match (or math-verify equivalence). With ``record``,
    every rollout is appended to it as (row's other columns, completion, reward)."""
    score = task.score if task is not None and verifier == "exact" else verifier_score(verifier)

    def reward(completions, answer, **columns):
        rewards = [score(c, a) for c, a in zip(completions, answer, strict=True)]
        if record is not None:
            names = [n for n, v in columns.items() if isinstance(v, list) and len(v) == len(completions)
                     and n != "completion_ids"]  # the dataset's columns (TRL also passes its state, loggers)
            for i, (completion, value) in enumerate(zip(completions, rewards, strict=True)):
                record.append(({"answer": answer[i], **{n: columns[n][i] for n in names}}, completion, value))
        return rewards

    reward.__name__ = "math_verify" if verifier == "math" else "exact_match"
    return reward


def _dataset(config: GRPORunConfig, task: Task | None):
    from datasets import Dataset

    if task is not None:
        examples = task.train_examples(config.steps * config.prompts_per_step, seed=config.seed)
        return Dataset.from_dict({"prompt": [e.prompt for e in examples], "answer": [e.answer for e in examples]})
    return load_rows(config.dataset, config.prompt_column, config.answer_column)


def plain_export_path(checkpoint: Path) -> Path:
    """Where the hint exports a checkpoint: beside its run, never inside it (RUN-checkpoint-N-plain)."""
    return checkpoint.resolve().parent.with_name(f"{checkpoint.resolve().parent.name}-{checkpoint.name}-plain")


def load_policy(config: GRPORunConfig, model_path: str):
    """The model to train: base + new LoRA (peft_config) or base + ``init_adapter`` (trainable)."""
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    if config.init_adapter:
        refuse_pickled_adapter(Path(config.init_adapter))

        if has_offset(config.init_adapter):
            raise NextxError("this checkpoint's weights include jumps folded into the base (nextx_base_offset."
                             "safetensors), which PEFT would drop", path=config.init_adapter,
                             hint=f"Export it as a plain adapter first: nextx export {config.init_adapter} -o "
                                  f"{plain_export_path(Path(config.init_adapter))}")
        return load_adapter(PeftModel, model, config.init_adapter, "--init-adapter", is_trainable=True), None
    targets = config.lora_targets
    targets = targets[0] if targets in (["all-linear"], ("all-linear",)) else targets  # PEFT's shorthand is a string
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules=targets,
                      lora_dropout=0.0, task_type="CAUSAL_LM")
    return model, lora


def grpo_args(config: GRPORunConfig, shuffle: bool = True):
    from trl import GRPOConfig

    cuda = torch.cuda.is_available()
    try:
        import vllm  # noqa: F401

        use_vllm = cuda
    except ImportError:
        use_vllm = False
    return GRPOConfig(
        output_dir=config.output_dir, max_steps=config.steps, save_strategy="steps", save_steps=config.save_every,
        save_only_model=not config.save_state, learning_rate=config.learning_rate, lr_scheduler_type="constant", warmup_steps=0,
        per_device_train_batch_size=config.prompts_per_step * config.num_generations, gradient_accumulation_steps=1,
        num_generations=config.num_generations, num_iterations=config.updates_per_rollout(),
        max_completion_length=config.max_completion_length,
        temperature=config.temperature, beta=config.beta, loss_type=config.loss_type, seed=config.seed,
        epsilon_high=config.clip_high(),
        use_cpu=not cuda, bf16=cuda, gradient_checkpointing=False, use_vllm=use_vllm,
        logging_steps=1 if config.next_at is not None and config.next_verify else 10,  # verification reads each step
        report_to="none", disable_tqdm=True, save_total_limit=None, dataloader_num_workers=0, shuffle_dataset=shuffle,
    )


@dataclass
class TrainResult:
    """What `train` did: the run directory, every jump decision (`JumpEngine` records) and the seconds
    spent training; ``nextx-train.json`` in the run directory holds the same (``record``)."""

    path: Path
    model_path: str
    jumps: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    config: dict = field(default_factory=dict)
    final_adapter: Path | None = None  # the true weights as a plain PEFT adapter, when jumps moved the base
    resumed_from: Path | None = None
    save_seconds: dict[int, float] = field(default_factory=dict)  # step → seconds since training began

    @property
    def record(self) -> dict:
        return {"config": self.config, "model_path": self.model_path, "train_seconds": self.train_seconds,
                "save_seconds": {str(k): v for k, v in self.save_seconds.items()},
                "jumps": self.jumps, "final_adapter": str(self.final_adapter) if self.final_adapter else None,
                "resumed_from": str(self.resumed_from) if self.resumed_from else None}


def train(config: GRPORunConfig, *, callbacks: list | None = None, log=print, console=None, dataset=None,
          record: list | None = None, resume: str | Path | bool | None = None, ordered: bool = False) -> TrainResult:
    """Run GRPO; return what it did (`TrainResult`). With ``config.next_at``, NExt jumps in the loop.
    With a rich ``console``: a progress bar and one line (reward, held-out accuracy) per checkpoint.
    ``dataset`` (prompt, answer and any other columns) replaces the config's; ``record`` collects every
    rollout (see `_reward_function`). ``resume``: a checkpoint of this run (True: its last) to continue
    from exactly — saved with ``save_state``; in-loop jumps are restored (`nextx.jump.resume`).
    ``ordered``: read ``dataset`` in its order, each step's prompts consecutive (TRL shuffles otherwise)."""
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    quiet_transformers()
    task = get_task(config.task) if config.task else None
    model_path = config.model
    if model_path is None:
        model_path = str(tiny_model_path(config.task, log=log))
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
    except (OSError, ValueError) as err:
        raise NextxError(f"no usable tokenizer beside the model: {str(err).splitlines()[0]}", path=model_path,
                         hint="Save the tokenizer with the model (tokenizer.save_pretrained).") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model, lora = load_policy(config, model_path)
    callbacks = list(callbacks or [])
    if config.next_at is not None:
        callbacks.append(jump_callback(config, task, model_path, log))
    if config.lookahead:
        callbacks.append(RepositionCallback.lookahead(config.lookahead, config.lookahead_alpha, log))
    if config.sfpo:
        callbacks.append(RepositionCallback.sfpo(config.sfpo, config.sfpo_alpha, log))
    clock = SaveClock()
    callbacks.append(clock)
    if console is not None:
        callbacks.insert(0, ProgressCallback(console, task, tokenizer))  # runs before a jump: logs checkpoint T as saved
    try:
        trainer = GRPOTrainer(
            model=model, reward_funcs=_reward_function(task, config.verifier, record), args=grpo_args(config, shuffle=not ordered),
            train_dataset=dataset if dataset is not None else _dataset(config, task), processing_class=tokenizer,
            peft_config=lora, callbacks=callbacks,
        )
    except ValueError as err:
        if "target modules" not in str(err).lower():
            raise
        raise NextxError(f"--lora-targets {','.join(config.lora_targets)} names no module of the model",
                         path=model_path, hint="Name its linear layers, e.g. q_proj,v_proj, or all-linear.") from None
    start = time.perf_counter()
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # nextx logs one clean line per checkpoint instead
    checkpoint = resume_checkpoint(Path(config.output_dir), resume) if resume else None
    if trainer.is_world_process_zero() and not checkpoint:  # the settings, for --resume (completed at the end)
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(config.output_dir) / RECORD_FILE).write_text(json.dumps(TrainResult(
            Path(config.output_dir), model_path, config=config.to_dict()).record, indent=2))
    with free_core_threads(), partial_checkpoint_removed(trainer, Path(config.output_dir)):
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    out = Path(config.output_dir)
    final = out / FINAL_ADAPTER
    result = TrainResult(out, model_path, [j for c in callbacks for j in getattr(c, "jumps", [])],
                         time.perf_counter() - start, config.to_dict(), final if final.is_dir() else None, checkpoint,
                         dict(clock.seconds))
    if trainer.is_world_process_zero():
        (result.path / RECORD_FILE).write_text(json.dumps(result.record, indent=2))
    return result


@contextlib.contextmanager
def partial_checkpoint_removed(trainer, run_dir: Path):
    """A disk that fills (or turns read-only) while a checkpoint is saved: that checkpoint is removed —
    never left to read as a complete one — and the error is one line; earlier checkpoints stay."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, SafetensorError) as err:
        text = getattr(err, "strerror", None) or str(err)
        if not any(word in text for word in ("No space left", "Disk quota", "Read-only file system")):
            raise
        partial = run_dir / f"checkpoint-{trainer.state.global_step}"
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        reason = next(w for w in ("No space left on device", "Disk quota exceeded", "Read-only file system")
                      if w.split()[0] in text)
        raise NextxError(f"cannot write checkpoint-{trainer.state.global_step}: {reason}", path=run_dir,
                         hint="Free disk space and resume (nextx train --resume with --save-state) or train again; "
                              "the partial checkpoint was removed.") from None


def jump_callback(config: GRPORunConfig, task: Task | None, model_path: str, log) -> NExtCallback:
    """NExt in the loop as the run's jump settings say (the task's verifier scores reward selection)."""
    scorer = None
    if config.next_select == "reward":
        scorer = TaskScorer(task, model_path, task.validation_split(config.next_eval_size))
    return NExtCallback(config.next_at, config.jump_every(), config.next_method, config.jump_ahead(), config.next_horizon,
                        config.method_hparams(), select=config.next_select, scorer=scorer, apply=config.next_apply,
                        cap=config.jump_cap(), damping=config.next_damping, log=log, velocity=config.jump_velocity(),
                        adaptive=config.next_adaptive, verify=config.next_verify, warm=config.next_warm)


def resume_checkpoint(run_dir: Path, resume: str | Path | bool) -> Path:
    """The checkpoint to resume from (True or "latest": the run's last); NextxError unless it holds the
    trainer's state (optimizer, scheduler, RNG: a run saved with save_state)."""
    if resume is True or resume == "latest":
        _, found = discover_checkpoints(run_dir, "trl")
        checkpoint = found[-1].path
    else:
        checkpoint = Path(resume)
    if not (checkpoint / "trainer_state.json").is_file():
        raise NextxError("not a checkpoint of a trainer (no trainer_state.json)", path=checkpoint,
                         hint="Pass a checkpoint-N directory of this run.")
    if not any(checkpoint.glob("optimizer.*")):
        raise NextxError("the checkpoint holds no optimizer state: resuming would restart Adam, not continue the run",
                         path=checkpoint, hint="Train with --save-state to resume exactly (or start a new run with "
                                               "--init-adapter).")
    return checkpoint
