"""`nextx train --algo dgo`: DGO's K iterations (arXiv 2603.24093, Algorithm 1) on TRL.

    bank ← the generator's experiences from the base model's answers to ``dgo_initial`` problems
    for k = 1 … K:
        RL        GRPO (TRL, clip-higher 0.28, no KL) from θ_k with a fresh LoRA, on a share α_k of
                  steps whose prompts are preceded by experiences retrieved from the bank, the rest plain
        renew     the generator's experiences from this iteration's rollouts, each accepted only if
                  the policy's validation accuracy with the bank improves (`ExperienceBank.renew`)
        rewrite   the guided trajectories that were right, rewritten without the experience, filtered,
                  top-K per problem (accumulated over iterations)
        distil    θ_{k+1} ← SFT of the *original* base on β rewrites + (1−β) guided trajectories
                  (TRL's SFTTrainer; skipped after the last iteration: the final model is its RL policy)

``--dgo-ablate`` removes one component (`ABLATIONS`); each stage's seconds go to the record.

Layout: ``OUT/iteration-k`` is a plain TRL run (checkpoint-N, NExt jumps with ``--next-at``; every
nextx command reads it), ``OUT/iteration-k/experience_bank.jsonl`` the bank its prompts drew from,
``OUT/distilled-k`` the SFT model that starts iteration k+1, ``OUT/experience_bank.jsonl`` the bank
now, ``OUT/nextx-dgo.json`` what each stage did. Choices the paper leaves open are in README (DGO).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from nextx.errors import NextxError
from nextx.io.discover import discover_checkpoints
from nextx.io.write import atomic_output_dir
from nextx.train.config import GRPORunConfig
from nextx.train.dgo.bank import BANK_FILE, ExperienceBank
from nextx.train.dgo.filters import keep_rewrites
from nextx.train.dgo.retrieval import embedder
from nextx.train.dgo.rewrite import AnswerRewriter, Guided, PolicyRewriter
from nextx.train.dgo.schedule import experience_share, with_experience
from nextx.train.evaluate import EvalResult, evaluate, greedy_completions
from nextx.train.experiences.generator import experience_generator
from nextx.train.experiences.line import Experience
from nextx.train.experiences.prompts import experience_prompt
from nextx.train.grpo import train
from nextx.train.quiet import quiet_transformers
from nextx.train.runs import load_for_eval
from nextx.train.tasks import Example, Task, get_task
from nextx.train.tasks.dataset import DatasetTask
from nextx.train.tiny_model import tiny_model_path

RECORD_FILE = "nextx-dgo.json"


def prompt_style(config: GRPORunConfig) -> str:
    """compact for the embedded tiny model, instruct for a user's model, unless ``dgo_prompt`` says."""
    if config.dgo_prompt != "auto":
        return config.dgo_prompt
    return "compact" if config.model is None else "instruct"


def guided_examples(examples: list[Example], bank: ExperienceBank, *, k: int,
                    style: str) -> tuple[list[Example], list[list[str]]]:
    """(each example with its prompt preceded by its ``k`` experiences retrieved from ``bank``, those
    experiences)."""
    retrieved = bank.retrieve([e.prompt for e in examples], k)
    return [Example(experience_prompt(e.prompt, r, style), e.answer) for e, r in zip(examples, retrieved, strict=True)], \
        retrieved


def guided_accuracy(model, tokenizer, task: Task, examples: list[Example], bank: ExperienceBank, *, k: int,
                    style: str) -> EvalResult:
    """Greedy accuracy with each prompt preceded by its ``k`` experiences retrieved from ``bank``."""
    return evaluate(model, tokenizer, task, guided_examples(examples, bank, k=k, style=style)[0])


def initial_bank(base: str, task: Task, problems: list[Example], generate, threshold: float,
                 embed=None) -> ExperienceBank:
    """The pre-built bank (the paper's is given; how it was built is not stated): the generator's rule
    for the base model's greedy answer to each problem, kept when below ``threshold`` similarity to
    the rules already kept."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = AutoModelForCausalLM.from_pretrained(base), AutoTokenizer.from_pretrained(base)
    bank = ExperienceBank(embed=embed)
    answers = greedy_completions(model, tokenizer, [e.prompt for e in problems], task.max_new_tokens)
    for example, completion in zip(problems, answers, strict=True):
        text = generate(example.prompt, completion, example.answer)
        if text is not None and bank.nearest(text)[1] < threshold:
            bank.entries.append(Experience(text, example.prompt, 0))
    return bank


def candidates_from(rollouts: list, generate, bank: ExperienceBank, limit: int, seed: int, round_: int) -> list[Experience]:
    """Up to ``limit`` distinct new experiences from a seeded sample of the iteration's rollouts."""
    rng = random.Random(seed)
    sample = rng.sample(rollouts, min(len(rollouts), 4 * limit))
    seen, out = set(bank.texts), []
    for row, completion, _reward in sample:
        text = generate(row["problem"], completion, row["answer"])
        if text is not None and text not in seen:
            seen.add(text)
            out.append(Experience(text, row["problem"], round_))
            if len(out) == limit:
                break
    return out


def guided_trajectories(rollouts: list, top_k: int, *, guided: bool = True) -> list[Guided]:
    """The right answers to experience-guided prompts (``guided=False``: to plain prompts), distinct, at
    most ``top_k`` per problem (shortest first). Only right ones: the paper does not say whether its S_e
    is filtered; SFT on wrong answers would teach them."""
    by_problem: dict[str, dict[str, Guided]] = {}
    for row, completion, reward in rollouts:
        if bool(row["experiences"]) == guided and reward == 1.0:
            by_problem.setdefault(row["problem"], {}).setdefault(completion, Guided(
                row["problem"], row["experiences"].split("\n") if guided else [], row["prompts"], completion,
                row["answer"]))
    return [g for found in by_problem.values() for g in sorted(found.values(), key=lambda g: len(g.completion))[:top_k]]


def mixture(rewrites: list[tuple[str, str]], guided: list[tuple[str, str]], beta: float, seed: int) -> list[tuple[str, str]]:
    """D_dist = β·rewrites + (1−β)·guided, as many (prompt, completion) pairs as both pools hold; a pool
    smaller than its share is drawn with replacement, an empty one gives its share to the other."""
    total = len(rewrites) + len(guided)
    if not rewrites or not guided:
        return list(rewrites or guided)
    rng = random.Random(seed)
    quota = round(beta * total)

    def draw(pool, n):
        return rng.sample(pool, n) if n <= len(pool) else pool + rng.choices(pool, k=n - len(pool))

    return draw(rewrites, quota) + draw(guided, total - quota)


def distil(base: str, pairs: list[tuple[str, str]], out: Path, config: GRPORunConfig) -> Path:
    """SFT the original base on (prompt, completion) pairs (loss on completions) with TRL's SFTTrainer;
    the model and tokenizer written atomically to ``out``."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    data = Dataset.from_dict({"prompt": [p for p, _ in pairs], "completion": [c for _, c in pairs]})
    with tempfile.TemporaryDirectory() as scratch:
        args = SFTConfig(
            output_dir=scratch, num_train_epochs=config.dgo_sft_epochs, per_device_train_batch_size=config.dgo_sft_batch,
            learning_rate=config.dgo_sft_lr, lr_scheduler_type="constant", warmup_steps=0, save_strategy="no",
            report_to="none", disable_tqdm=True, logging_steps=10, seed=config.seed, use_cpu=not torch.cuda.is_available(),
            completion_only_loss=True, max_length=None, dataloader_num_workers=0, **_length_grouped(SFTConfig),
            bf16=torch.cuda.is_available(), gradient_checkpointing=False,  # TRL's defaults (True, True) crawl on a CPU
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
        trainer.train()
    with atomic_output_dir(out, force=True) as tmp:
        trainer.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out


ABLATIONS = {
    "none": "DGO as described",
    "annealing": "w/o experience annealing: the share of guided prompts stays at the schedule's first value",
    "renewal": "w/o experience renewal: the initial bank is never changed",
    "rephrasing": "w/o trajectory rephrasing: the guided trajectories are distilled under plain prompts as they are, "
                  "not rewritten (the filter still applies; the embedded task's rewrite is this identity already)",
    "distillation": "w/o policy distillation: the next iteration starts from this iteration's RL policy (merged)",
    "rft": "rejection-sampling fine-tuning: no experiences anywhere (α = 0, no bank); the same SFT from the base "
           "on the policy's right answers to plain prompts, in both of its pools (as many examples as DGO's)",
}


def ablated_schedule(shares: tuple[float, ...], ablate: str) -> tuple[float, ...]:
    """The experience shares an ablation trains on: the first one throughout without annealing, none for rft."""
    return {"annealing": shares[:1], "rft": (0.0,)}.get(ablate, shares)


def save_merged(policy, tokenizer, out: Path) -> Path:
    """The RL policy with its LoRA (and any jump offsets) merged, written atomically to ``out``."""
    merged = policy.merge_and_unload() if hasattr(policy, "merge_and_unload") else policy
    with atomic_output_dir(out, force=True) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out


def _length_grouped(config_class) -> dict:
    """Batches of similar lengths (plain rewrites and guided trajectories apart: less padding), in the
    installed transformers' spelling."""
    fields = config_class.__dataclass_fields__
    if "train_sampling_strategy" in fields:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True} if "group_by_length" in fields else {}


def iteration_dataset(chunk: list[Example], bank: ExperienceBank, share: float, config: GRPORunConfig, style: str,
                      seed: int):
    """(dataset, guided count): an exact, seeded share of the iteration's *steps* whose prompts are all
    preceded by experiences retrieved from ``bank``, in step order (GRPO reads it unshuffled): a step's
    prompts are padded to its longest, so a step of guided and plain prompts would cost a guided one.
    Columns prompt, answer, problem (plain) and experiences (newline-joined)."""
    from datasets import Dataset

    per_step = config.prompts_per_step
    steps = sorted(with_experience(len(chunk) // per_step, share, seed=seed))
    chosen = [i for step in steps for i in range(step * per_step, (step + 1) * per_step)]
    retrieved = dict(zip(chosen, bank.retrieve([chunk[i].prompt for i in chosen], config.dgo_experiences), strict=True))
    rows = [retrieved.get(i, []) for i in range(len(chunk))]
    return Dataset.from_dict({
        "prompt": [experience_prompt(e.prompt, r, style) for e, r in zip(chunk, rows, strict=True)],
        "answer": [e.answer for e in chunk], "problem": [e.prompt for e in chunk],
        "experiences": ["\n".join(r) for r in rows]}), len(chosen)


def internalize(rollouts: list, rewriter, task: Task, config: GRPORunConfig) -> tuple[list[tuple[str, str]], list[Guided]]:
    """(rewrites kept as (plain problem, text), the guided trajectories they came from): the right
    guided answers, rewritten, filtered, top-K per problem. Under ``--dgo-ablate rft`` the right answers
    to plain prompts, as they are, in both roles; ``rephrasing``: the trajectories themselves, not rewritten."""
    if config.dgo_ablate == "rft":  # both pools: DGO distils each right answer twice (plain and guided prompt)
        plain = guided_trajectories(rollouts, config.dgo_top_k, guided=False)
        return [(g.problem, g.completion) for g in plain], plain
    guided = guided_trajectories(rollouts, config.dgo_top_k)
    rewriter = AnswerRewriter() if config.dgo_ablate == "rephrasing" else rewriter
    by_problem: dict[str, list[str]] = {}
    for item, text in zip(guided, rewriter(guided), strict=True):
        by_problem.setdefault(item.problem, []).append(text)
    kept = keep_rewrites(by_problem, {g.problem: g.answer for g in guided}, max_chars=config.dgo_max_rewrite_chars,
                         top_k=config.dgo_top_k, correct=lambda text, answer: task.score(text, answer) == 1.0)
    return [(problem, text) for problem, found in kept.items() for text in found], guided


def decision_counts(decisions) -> list[tuple[str, int]]:
    actions = [d.action for d in decisions]
    return [(a, actions.count(a)) for a in ("added", "replaced", "rejected")]


def last_checkpoint(run_dir: Path) -> Path:
    _, checkpoints = discover_checkpoints(run_dir, "trl")
    return checkpoints[-1].path


@dataclass
class DGOResult:
    """What `train_dgo` did: the last iteration's run directory (its last checkpoint is the final
    policy) and the record written to ``nextx-dgo.json`` (config, bank, every iteration)."""

    path: Path
    record: dict


def train_dgo(config: GRPORunConfig, *, log=print, console=None) -> DGOResult:
    """Run DGO's K iterations (see the module docstring); return what it did."""
    quiet_transformers()
    task = get_task(config.task) if config.task else DatasetTask.from_config(config)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = config.model or str(tiny_model_path(config.task, experiences=True, log=log))
    generate = experience_generator(config.dgo_generator)
    per_iteration = config.steps * config.prompts_per_step
    problems = task.train_examples(config.dgo_iterations * per_iteration, seed=config.seed)
    if config.dgo_ablate == "rft":
        bank = ExperienceBank(embed=embedder(config.dgo_retriever))
        log("DGO without experiences (--dgo-ablate rft): GRPO on plain prompts, SFT on its right answers")
    else:
        bank = initial_bank(base, task, task.train_examples(config.dgo_initial, seed=config.seed + 1), generate,
                            config.dgo_similarity, embedder(config.dgo_retriever))
        log(f"DGO: initial bank of {len(bank)} experiences from the base model's answers to {config.dgo_initial} problems")
        if not bank.entries and config.dataset and config.dgo_generator == "rules":
            raise NextxError(f"the rule-based experience generator wrote no experience for {config.dgo_initial} of the "
                             "dataset's problems (it reads additions like 47+38=)", path=config.dataset,
                             hint="Pass --dgo-generator MODEL: a causal LM that writes WHEN … IF … THEN … lines.")
    bank.save(out / BANK_FILE)
    loop = _Loop(config, task, out, base, prompt_style(config), generate, bank,
                 task.validation_split(config.dgo_validation_size), log, console)
    record = {"config": config.to_dict(), "base": base, "style": loop.style, "initial_bank": len(bank),
              "validation_prompts": len(loop.validation), "iterations": []}
    shares = ablated_schedule(config.schedule(), config.dgo_ablate)
    for k in range(1, config.dgo_iterations + 1):
        start = time.perf_counter()
        step = loop.iteration(k, experience_share(k - 1, shares), problems[(k - 1) * per_iteration : k * per_iteration])
        record["iterations"].append({**step, "seconds": time.perf_counter() - start})
        (out / RECORD_FILE).write_text(json.dumps(record, indent=2))
    return DGOResult(out / f"iteration-{config.dgo_iterations}", record)


@dataclass
class _Loop:
    """DGO's state across iterations: the bank, the accumulated distillation data, the current model."""

    config: GRPORunConfig
    task: Task
    out: Path
    base: str
    style: str
    generate: object
    bank: ExperienceBank
    validation: list
    log: object
    console: object
    rewrites: list = field(default_factory=list)  # S_imp, accumulated: (plain problem, rewrite)
    guided_pairs: list = field(default_factory=list)  # S_e, accumulated: (guided prompt, completion)
    model_path: str = ""

    def iteration(self, k: int, share: float, problems: list) -> dict:
        """GRPO on the annealed mixture, bank renewal, rewrite + SFT; the iteration's record."""
        config, log, bank = self.config, self.log, self.bank
        self.model_path = self.model_path or self.base
        run_dir = self.out / f"iteration-{k}"
        run_dir.mkdir(exist_ok=True)
        bank.save(run_dir / BANK_FILE)
        dataset, guided_prompts = iteration_dataset(problems, bank, share, config, self.style, seed=config.seed * 1000 + k)
        log(f"DGO iteration {k}/{config.dgo_iterations}: GRPO on {share:.0%} experience-guided prompts "
            f"(bank of {len(bank)}), from {self.model_path}")
        rollouts: list = []
        clock = {"rl": time.perf_counter()}
        train(replace(config, output_dir=str(run_dir), model=self.model_path), log=log, console=self.console,
              dataset=dataset, record=rollouts, ordered=True)
        clock["rl"] = time.perf_counter() - clock["rl"]
        started = time.perf_counter()
        policy, policy_tokenizer = load_for_eval(last_checkpoint(run_dir), self.model_path)
        renew = config.dgo_ablate not in ("renewal", "rft")
        new = candidates_from(rollouts, self.generate, bank, config.dgo_candidates if renew else 0,
                              config.seed * 1000 + k, k)
        decisions = bank.renew(new, lambda b: guided_accuracy(policy, policy_tokenizer, self.task, self.validation, b,
                                                              k=config.dgo_experiences, style=self.style).accuracy,
                               threshold=config.dgo_similarity)
        bank.save(self.out / BANK_FILE)
        clock["renewal"], started = time.perf_counter() - started, time.perf_counter()
        rewriter = AnswerRewriter() if self.style == "compact" else PolicyRewriter(policy, policy_tokenizer,
                                                                                   config.max_completion_length)
        kept, guided = internalize(rollouts, rewriter, self.task, config)
        self.rewrites += kept
        self.guided_pairs += [(g.prompt, g.completion) for g in guided]
        clock["internalize"], started = time.perf_counter() - started, time.perf_counter()
        step = {"iteration": k, "share": share, "guided_prompts": guided_prompts, "rollouts": len(rollouts),
                "run": str(run_dir), "model": self.model_path, "candidates": len(new),
                "renewal": [asdict(d) for d in decisions], "bank": len(bank),
                "guided_kept": len(guided), "rewrites_kept": len(kept)}
        pairs = mixture(self.rewrites, self.guided_pairs, config.dgo_beta, config.seed * 1000 + k)
        if k < config.dgo_iterations and config.dgo_ablate == "distillation":
            self.model_path = str(save_merged(policy, policy_tokenizer, self.out / f"policy-{k}"))
            step["continued"] = {"path": self.model_path}
        elif k < config.dgo_iterations and not pairs:
            log(f"DGO iteration {k}: no right guided answer yet, nothing to distil: the next iteration starts "
                f"from {self.model_path} again")
        elif k < config.dgo_iterations:
            self.model_path = str(distil(self.base, pairs, self.out / f"distilled-{k}", config))
            step["distilled"] = {"path": self.model_path, "examples": len(pairs)}
        clock["distil"] = time.perf_counter() - started
        step["stage_seconds"] = clock
        log(f"DGO iteration {k}: renewal tried {len(new)} ({', '.join(f'{n} {a}' for a, n in decision_counts(decisions))}), "
            f"kept {len(kept)} rewrites and {len(guided)} guided trajectories")
        return step
