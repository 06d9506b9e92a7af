"""The embedded default model: a ~0.3M-parameter Llama built from a config, with a character
tokenizer, warmed up by a short deterministic SFT on the task until its greedy held-out accuracy
is about 30% (so GRPO has signal but room to improve). Built once and cached in
``$NEXTX_CACHE`` (default ``~/.cache/nextx``), rebuilt whenever the recipe below changes. The
default task's model ships with the package (``assets/``, 1.3 MB, written by
``python -m nextx.train.tiny_model --write-asset addition``), so neither the demo nor the tests
spend a minute building it.

DGO's variant (``experiences=True``) also reads experience lines: its tokenizer adds letters and
punctuation, and each clause the rule generator writes is one token (a rule is 9 tokens, so a guided
prompt costs about twice a plain one, not ~4×: closer to an experience's share of a real model's
trajectory), its context is 256 tokens, and half of its warm-up prompts carry an experience the
rule-based generator writes (``WHEN … IF … THEN …`` newline problem), so it has learnt the prompt
format before RL — as an instruction-tuned model has. The rules it reads in warm-up are those
retrieval delivers (``rules="any"``): for a right or a wrong attempt, of this problem or of another,
so it learns to read a rule as advice whose condition may not hold here, not as a fact about this
problem (``rules="own"``, the first recipe, showed only the right answer's rule of the problem itself;
a rule from another problem then cost it a third of its accuracy). It ships too
(``--write-asset addition --experiences``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from nextx.io.write import atomic_output_dir
from nextx.train.evaluate import evaluate
from nextx.train.tasks import Task, get_task
from nextx.train.tokenizer import char_tokenizer


@dataclass(frozen=True)
class TinyRecipe:
    """Everything that decides the cached model; its hash names the cache folder."""

    task: str = "addition"
    hidden_size: int = 96
    intermediate_size: int = 256
    layers: int = 3
    heads: int = 4
    seed: int = 0
    sft_lr: float = 3e-3
    sft_batch: int = 64
    sft_max_steps: int = 3000
    target_accuracy: float = 0.3  # stop the warm-up once held-out-disjoint validation accuracy reaches this
    check_every: int = 50
    version: int = 2  # 2: training prompts also exclude the validation split
    experiences: bool = False  # DGO's variant: reads WHEN/IF/THEN lines before the problem
    rules: str = "any"  # DGO's variant: the warm-up's rules, "any" (see the module docstring) or "own"
    tokens: str = "clauses"  # DGO's variant: the generator's "clauses" (and words) or "words" are one token each

    @classmethod
    def shipped(cls, task: str = "addition", experiences: bool = False) -> TinyRecipe:
        """The recipe `tiny_model_path` builds. DGO's variant warms up from seed 1 to 40% (from seed 0,
        with clause tokens, validation accuracy was still ~10% after the 3,000 steps allowed; 40% is
        where its word-token predecessor stopped, 42%, so DGO's figures start from a comparable base)."""
        if not experiences:
            return cls(task=task)
        return cls(task=task, experiences=True, seed=1, target_accuracy=0.4)

    def recorded(self) -> dict:
        """The recipe's fields; ``experiences``, ``rules`` and ``tokens`` only for DGO's variant (so the
        plain recipe's hash is unchanged)."""
        fields = asdict(self)
        if not self.experiences:
            del fields["experiences"], fields["rules"], fields["tokens"]
        return fields

    @property
    def context(self) -> int:
        return 256 if self.experiences else 64

    @property
    def name(self) -> str:
        return f"tiny-{self.task}{'-dgo' if self.experiences else ''}-{self.key()}"

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.recorded(), sort_keys=True).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    return Path(os.environ.get("NEXTX_CACHE") or Path.home() / ".cache" / "nextx")


def build_model(recipe: TinyRecipe, vocab_size: int, pad_id: int, eos_id: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(recipe.seed)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=recipe.hidden_size, intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.layers, num_attention_heads=recipe.heads, num_key_value_heads=recipe.heads,
        max_position_embeddings=recipe.context, tie_word_embeddings=True, pad_token_id=pad_id, eos_token_id=eos_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config)


def _sft_batch(tokenizer, examples) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded prompt+answer+eos; loss only on answer and eos tokens."""
    rows, labels = [], []
    for e in examples:
        prompt = tokenizer(e.prompt)["input_ids"]
        answer = tokenizer(e.answer)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    lab = torch.tensor([r + [-100] * (width - len(r)) for r in labels])
    return ids, (ids != pad).long(), lab


def warm_up(model, tokenizer, task: Task, recipe: TinyRecipe) -> dict:
    """SFT until validation accuracy ≥ target (checked every `check_every` steps) or max steps."""
    rng = random.Random(recipe.seed)
    pool = task.train_examples(50_000, seed=recipe.seed + 17)
    validation = task.train_examples(300, seed=recipe.seed + 99)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.sft_lr, weight_decay=0.0)
    torch.manual_seed(recipe.seed)
    accuracy = 0.0
    guide = _experience_guide(recipe.rules, pool) if recipe.experiences else None
    for step in range(1, recipe.sft_max_steps + 1):
        model.train()
        batch = rng.sample(pool, recipe.sft_batch)
        if guide is not None:
            batch = [guide(e, rng) if rng.random() < 0.5 else e for e in batch]
        ids, mask, labels = _sft_batch(tokenizer, batch)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % recipe.check_every == 0:
            accuracy = evaluate(model, tokenizer, task, validation).accuracy
            if accuracy >= recipe.target_accuracy:
                break
    return {"sft_steps": step, "validation_accuracy": accuracy}


def _experience_guide(rules: str, pool: list):
    """(example, rng) → the same example (same answer) whose prompt starts with one generator rule:
    ``own``: the rule of its own right answer; ``any``: the rule of a right (½) or wrong (½) attempt,
    at one problem in two another problem of ``pool`` (as retrieval may deliver)."""
    from nextx.train.experiences.generator import RuleGenerator, wrong_attempt
    from nextx.train.experiences.prompts import experience_prompt

    generate = RuleGenerator()

    def guide(example, rng):
        source = example if rules == "own" or rng.random() < 0.5 else rng.choice(pool)
        attempt = source.answer if rules == "own" or rng.random() < 0.5 else wrong_attempt(source.answer, rng)
        rule = generate(source.prompt, attempt, source.answer)
        return example if rule is None else type(example)(experience_prompt(example.prompt, [rule]), example.answer)

    return guide


def experience_words(recipe: TinyRecipe) -> tuple[str, ...]:
    """The words and phrases that are one token each, for DGO's variant: the rule generator's words,
    and with ``tokens="clauses"`` each clause it writes (a rule is then 9 tokens, not ~30)."""
    from nextx.train.experiences.generator import CLAUSES, WORDS

    if not recipe.experiences:
        return ()
    return {"words": WORDS, "clauses": (*WORDS, *CLAUSES)}[recipe.tokens]


def tokenizer_alphabet(task: Task, recipe: TinyRecipe) -> str:
    """The characters the model reads: the task's, plus experience lines' for DGO's variant."""
    from nextx.train.experiences.prompts import EXPERIENCE_ALPHABET

    return task.alphabet + (EXPERIENCE_ALPHABET if recipe.experiences else "")


ASSETS = Path(__file__).parent / "assets"


def tiny_model_path(task: str = "addition", *, experiences: bool = False, rebuild: bool = False, log=None) -> Path:
    """Path of the warmed-up tiny model (+ tokenizer) for ``task`` (DGO's variant with ``experiences``):
    the packaged one for this recipe, else the cached one; builds it into the cache if neither exists
    (or with ``rebuild``)."""
    recipe = TinyRecipe.shipped(task, experiences)
    name = recipe.name
    if not rebuild:
        for path in (ASSETS / name, cache_dir() / name):
            if (path / "nextx-recipe.json").exists():
                return path
    return build_into(cache_dir() / name, recipe, log)


def build_into(path: Path, recipe: TinyRecipe, log=None) -> Path:
    """Build the tiny model of ``recipe`` into ``path`` (atomically), removing stale siblings."""
    task = recipe.task
    task_obj = get_task(task)
    tokenizer = char_tokenizer(tokenizer_alphabet(task_obj, recipe), experience_words(recipe))
    model = build_model(recipe, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    if log:
        log(f"building the tiny {task} model ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
            f"SFT warm-up to ~{recipe.target_accuracy:.0%}) into {path}")
    info = warm_up(model, tokenizer, task_obj, recipe)
    with atomic_output_dir(path, force=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "nextx-recipe.json").write_text(json.dumps({**recipe.recorded(), **info}, indent=2))
    prefix = recipe.name.removesuffix(recipe.key())
    for stale in path.parent.glob(prefix + "*"):
        if stale != path and "-" not in stale.name.removeprefix(prefix):  # an older key of this very variant
            shutil.rmtree(stale, ignore_errors=True)
    return path


if __name__ == "__main__":  # regenerate a packaged model: python -m nextx.train.tiny_model --write-asset addition
    import argparse

    parser = argparse.ArgumentParser(description="Build a tiny model into nextx/train/assets.")
    parser.add_argument("--write-asset", metavar="TASK", required=True)
    parser.add_argument("--experiences", action="store_true", help="DGO's variant (reads experience lines)")
    args = parser.parse_args()
    recipe = TinyRecipe.shipped(args.write_asset, args.experiences)
    print(build_into(ASSETS / recipe.name, recipe, log=print))
