"""Evaluate checkpoints: an adapter dir, merged weights, or every checkpoint of a run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nextx.errors import NextxError
from nextx.io.adapter import ADAPTER_CONFIG
from nextx.io.discover import discover_checkpoints
from nextx.io.hub import resolve_model
from nextx.io.offsets import read_offsets
from nextx.io.tensors import has_full_weights
from nextx.jump.live import add_to_base, lora_layers
from nextx.train.evaluate import EvalResult, evaluate, evaluate_population
from nextx.train.quiet import quiet_transformers
from nextx.train.tasks import Task


def refuse_pickled_adapter(path: Path, allow_pickle: bool = False) -> None:
    """NextxError for an adapter stored only as a pickle (.bin), unless ``allow_pickle``: PEFT would
    unpickle it."""
    if not allow_pickle and not (path / "adapter_model.safetensors").exists() and (path / "adapter_model.bin").exists():
        raise NextxError("the adapter is a pickle (adapter_model.bin); nextx does not unpickle by default", path=path,
                         hint="Convert it to safetensors (PEFT: save_pretrained(..., safe_serialization=True)).")


def load_adapter(peft_model, model, path, what: str, **kwargs):
    """PEFT's PeftModel.from_pretrained, with an adapter of another model named as such (one line)."""
    try:
        return peft_model.from_pretrained(model, path, **kwargs)
    except (RuntimeError, KeyError, ValueError) as err:
        lines = str(err).strip().splitlines()
        detail = next((line.strip() for line in lines if "size mismatch" in line or "not found" in line), "")
        raise NextxError(f"{what} does not fit the base model" + (f": {detail[:160]}" if detail else ""), path=path,
                         hint="Use the adapter with the model it was trained on (its adapter_config.json names it).") \
            from None


def apply_base_offsets(model, path: Path) -> None:
    """Add a checkpoint's accumulated base offsets (`nextx.io.offsets`) to the PEFT model's base weights."""
    offsets = read_offsets(path)
    layers = lora_layers(model) if offsets else {}
    for name, (left, right) in offsets.items():
        layer = layers.get(name)
        if layer is None or (left.shape[0], right.shape[1]) != tuple(layer.base_layer.weight.shape):
            raise NextxError(f"base offset of {name} does not fit the adapter's model", path=path,
                             hint="The offset file belongs to another run: remove this checkpoint.")
        add_to_base(layer, left, right)


def load_for_eval(path: str | Path, base: str | Path | None = None):
    """(model, tokenizer) for an adapter dir (on ``base`` or its base_model_name_or_path) or a full model dir."""
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    path = Path(path)
    if (path / ADAPTER_CONFIG).exists():
        from peft import PeftModel

        refuse_pickled_adapter(path)
        base = base or json.loads((path / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
        base = resolve_model(base) if base else None
        if base is None or not base.exists():
            raise NextxError("cannot find the adapter's base model", path=path, hint="Pass --base PATH or a Hub id.")
        model = load_adapter(PeftModel, AutoModelForCausalLM.from_pretrained(base), path, "the adapter")
        apply_base_offsets(model, path)
        tokenizer_dir = path if (path / "tokenizer_config.json").exists() else base
    elif has_full_weights(path):
        model = AutoModelForCausalLM.from_pretrained(path)
        tokenizer_dir = path if (path / "tokenizer_config.json").exists() else base
    else:
        raise NextxError("neither an adapter nor a model directory", path=path)
    if tokenizer_dir is None:
        raise NextxError("no tokenizer beside the weights", path=path, hint="Pass --base with the tokenizer.")
    return model, AutoTokenizer.from_pretrained(tokenizer_dir)


def evaluate_path(path: str | Path, task: Task, base: str | Path | None = None, *, population: bool = False) -> EvalResult:
    """Accuracy of a checkpoint: on the held-out split, or with ``population`` exact on the task's test
    population (when it has one)."""
    model, tokenizer = load_for_eval(path, base)
    return evaluate_population(model, tokenizer, task) if population else evaluate(model, tokenizer, task)


def evaluate_run(run_dir: str | Path, task: Task, base: str | Path, *, population: bool = False,
                 only: Callable[[int], bool] | None = None) -> dict[int, float]:
    """Accuracy of every checkpoint-N of a run (step → accuracy), plus step 0 = the base; ``only``
    keeps the steps to score (then step 0 only if it passes too)."""
    _, checkpoints = discover_checkpoints(Path(run_dir), "trl")
    keep = only or (lambda _step: True)
    accuracy = {0: evaluate_path(base, task, population=population).accuracy} if keep(0) else {}
    for checkpoint in checkpoints:
        if keep(checkpoint.step):
            accuracy[checkpoint.step] = evaluate_path(checkpoint.path, task, base, population=population).accuracy
    return accuracy
