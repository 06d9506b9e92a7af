"""Run discovery in every layout nextx reads, LoRA scaling variants, full-weight runs."""

import json
import math
import os
import shutil

import pytest
import torch
from helpers import (
    load_lora_delta,
    make_full_run,
    make_lora_run,
    raises_whole,
    save_gpt2_base,
    save_lora_checkpoints,
)
from safetensors.torch import save_file

from nextx import load_run
from nextx.errors import NextxError


def test_trl_layout_uses_real_steps(trl_run, base_model):
    run = load_run(trl_run)
    assert run.layout == "trl" and run.kind == "lora"
    assert run.steps == [10, 20, 30, 40, 50, 60, 70, 80]
    assert len(run.modules) == 14
    spec = run.modules["model.layers.0.self_attn.q_proj"]
    assert (spec.shape, spec.rank, spec.scaling) == ((32, 32), 4, 2.0)
    assert run.modules["model.layers.1.self_attn.k_proj"].shape == (16, 32)


def test_trainer_state_global_step_wins(tmp_path, base_model):
    make_lora_run(tmp_path / "run", base_model, [1, 2, 3])
    for n, step in ((1, 15), (2, 30), (3, 45)):
        (tmp_path / "run" / f"checkpoint-{n}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    assert load_run(tmp_path / "run").steps == [15, 30, 45]


@pytest.mark.parametrize("layout", ["verl", "openrlhf", "steps"])
def test_other_layouts_with_uneven_steps(tmp_path, base_model, layout):
    make_lora_run(tmp_path / "run", base_model, [5, 12, 40], layout=layout)
    run = load_run(tmp_path / "run")
    assert run.layout == layout and run.steps == [5, 12, 40]


def test_verl_lora_train_meta_supplies_alpha(tmp_path, base_model):
    make_lora_run(tmp_path / "run", base_model, [10, 20], layout="verl", alpha=8)
    for step in (10, 20):
        adapter = tmp_path / "run" / f"global_step_{step}" / "actor" / "lora_adapter"
        config = json.loads((adapter / "adapter_config.json").read_text())
        config["lora_alpha"] = 0  # what verl's model_merger writes
        (adapter / "adapter_config.json").write_text(json.dumps(config))
        (adapter.parent / "lora_train_meta.json").write_text(json.dumps({"r": 4, "lora_alpha": 16}))
    run = load_run(tmp_path / "run")
    assert run.modules["model.layers.0.self_attn.q_proj"].scaling == 16 / 4


def test_adapter_config_alpha_wins_over_verl_meta(tmp_path, base_model):
    """verl's lora_train_meta.json stores an integer-truncated alpha: adapter_config.json wins, with a warning."""
    make_lora_run(tmp_path / "run", base_model, [10, 20], layout="verl", alpha=8)
    for step in (10, 20):
        (tmp_path / "run" / f"global_step_{step}" / "actor" / "lora_train_meta.json").write_text(
            json.dumps({"r": 4, "lora_alpha": 6}))
    with pytest.warns(UserWarning, match="lora_train_meta.json says alpha 6, adapter_config.json says 8"):
        run = load_run(tmp_path / "run")
    assert run.modules["model.layers.0.self_attn.q_proj"].scaling == 8 / 4


@pytest.mark.parametrize("field,value,message", [
    ("lora_alpha", "abc", "adapter_config.json has lora_alpha = 'abc', not a number"),
    ("lora_alpha", -8, "adapter_config.json has a negative lora_alpha (-8)"),
    ("r", "four", "adapter_config.json has r = 'four', not a positive integer"),
    ("r", 4.5, "adapter_config.json has r = 4.5, not a positive integer"),
])
def test_bad_adapter_config_values_are_named(tmp_path, base_model, field, value, message):
    make_lora_run(tmp_path / "run", base_model, [10, 20])
    for step in (10, 20):
        path = tmp_path / "run" / f"checkpoint-{step}" / "adapter_config.json"
        config = json.loads(path.read_text())
        config[field] = value
        path.write_text(json.dumps(config))
    with pytest.raises(NextxError) as caught:
        load_run(tmp_path / "run")
    assert caught.value.message == message


def test_explicit_checkpoints(trl_run):
    run = load_run(None, checkpoints={20: trl_run / "checkpoint-20", 50: trl_run / "checkpoint-50"})
    assert run.layout == "explicit" and run.steps == [20, 50]


def test_layout_can_be_forced(tmp_path, base_model):
    make_lora_run(tmp_path / "run", base_model, [10, 20])
    shutil.copytree(tmp_path / "run" / "checkpoint-10", tmp_path / "run" / "global_step_99")
    with raises_whole(NextxError, f"mixed checkpoint layouts: trl (checkpoint-10) and verl (global_step_99) ({tmp_path / 'run'}). "
                                  "Pass --layout to choose one."):
        load_run(tmp_path / "run")
    assert load_run(tmp_path / "run", layout="trl").steps == [10, 20]


def _top_sigma(run, name, index):
    return run.deltas(name).spectrum({index: 1.0}).sigma


@pytest.mark.parametrize(
    "kwargs",
    [
        {"use_rslora": True, "r": 4, "alpha": 8},
        {"rank_pattern": {"q_proj": 2}, "alpha_pattern": {"down_proj": 3}, "r": 4, "alpha": 8},
    ],
    ids=["rslora", "patterns"],
)
def test_scaling_variants_match_peft_merge(tmp_path, base_model, kwargs):
    make_lora_run(tmp_path / "run", base_model, [10, 20], **kwargs)
    run = load_run(tmp_path / "run")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_model), tmp_path / "run" / "checkpoint-20")
    merged = merged.merge_and_unload().state_dict()
    base = AutoModelForCausalLM.from_pretrained(base_model).state_dict()
    for name in ("model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj", "model.layers.0.mlp.up_proj"):
        dense = (merged[f"{name}.weight"] - base[f"{name}.weight"]).double()
        expected = torch.linalg.svdvals(dense)[0].item()
        assert abs(_top_sigma(run, name, 1) - expected) < 1e-5 * expected
    if "rank_pattern" in kwargs:
        assert run.modules["model.layers.0.self_attn.q_proj"].rank == 2
        assert run.modules["model.layers.0.mlp.down_proj"].scaling == 3 / 4
    else:
        assert run.modules["model.layers.0.mlp.up_proj"].scaling == 8 / math.sqrt(4)


def test_fan_in_fan_out_gpt2(tmp_path):
    base = save_gpt2_base(tmp_path / "gpt2")
    save_lora_checkpoints(base, {10: tmp_path / "run" / "checkpoint-10", 20: tmp_path / "run" / "checkpoint-20"},
                          targets=["c_attn"], fan_in_fan_out=True)
    run = load_run(tmp_path / "run", base=base)
    name = "transformer.h.0.attn.c_attn"
    assert run.modules[name].shape == (32, 96)  # Conv1D stores (in, out)
    stack = run.deltas(name)
    expected = load_lora_delta(tmp_path / "run" / "checkpoint-20", name).T
    assert torch.allclose(stack.delta(1), expected, atol=1e-10)


def test_bf16_adapters(tmp_path, base_model):
    make_lora_run(tmp_path / "run", base_model, [10, 20], dtype=torch.bfloat16)
    run = load_run(tmp_path / "run")
    name = "model.layers.0.self_attn.o_proj"
    expected = torch.linalg.svdvals(load_lora_delta(tmp_path / "run" / "checkpoint-20", name))[0].item()
    assert abs(_top_sigma(run, name, 1) - expected) < 1e-10 * expected


def test_full_weight_run_counts_only_changed_matrices(tmp_path, base_model):
    make_full_run(tmp_path / "run", base_model, [10, 20, 30])
    run = load_run(tmp_path / "run", base=base_model)
    assert run.kind == "full"
    assert sorted(run.modules) == [
        "model.layers.0.mlp.down_proj", "model.layers.0.self_attn.q_proj",
        "model.layers.1.mlp.down_proj", "model.layers.1.self_attn.q_proj",
    ]
    assert "model.layers.0.input_layernorm.weight" in run.passthrough_keys  # 1-D: carried, not decomposed
    stack = run.deltas("model.layers.0.self_attn.q_proj")
    from safetensors.torch import load_file

    dense = (load_file(tmp_path / "run/checkpoint-30/model.safetensors")["model.layers.0.self_attn.q_proj.weight"]
             - load_file(base_model / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"]).double()
    expected = torch.linalg.svdvals(dense)[0].item()
    assert abs(stack.spectrum({2: 1.0}).sigma - expected) < 1e-4 * expected
    from nextx import trajectories

    traj = trajectories(run, horizon=1).modules["model.layers.0.self_attn.q_proj"]  # the same through the series
    assert abs(float(traj.global_delta.sigma[2]) - expected) < 1e-4 * expected
    assert traj.energy == [None, None, None] and traj.target_delta.steps == [10, 20]


def test_sharded_full_checkpoints(tmp_path, base_model):
    from huggingface_hub import save_torch_state_dict
    from safetensors.torch import load_file

    make_full_run(tmp_path / "run", base_model, [10, 20])
    for step in (10, 20):
        d = tmp_path / "run" / f"checkpoint-{step}"
        state = load_file(d / "model.safetensors")
        (d / "model.safetensors").unlink()
        save_torch_state_dict(state, d, max_shard_size="20KB")
        assert (d / "model.safetensors.index.json").exists()
    run = load_run(tmp_path / "run", base=base_model)
    assert len(run.modules) == 4


@pytest.mark.parametrize("value", [True, -3, 2.5, "20", None])
def test_a_nonsense_global_step_is_refused_and_a_disagreement_warns(tmp_path, base_model, value):
    make_lora_run(tmp_path / "run", base_model, [10, 20])
    state = tmp_path / "run" / "checkpoint-20" / "trainer_state.json"
    state.write_text(json.dumps({"global_step": value}))
    with raises_whole(NextxError, f"trainer_state.json has global_step {value!r}, not a step number ({state}). Fix it, "
                                  "or delete it to use the directory's step 20."):
        load_run(tmp_path / "run")
    state.write_text(json.dumps({"global_step": 30}))
    with pytest.warns(UserWarning, match="global_step 30 disagrees with the directory's step 20; using 30"):
        assert load_run(tmp_path / "run").steps == [10, 30]


def _offset_cases(name):
    """(what to put in checkpoint-20's offset slot, the whole message) for the offset reader."""
    import torch

    good = {f"{name}.left": torch.ones(64, 1), f"{name}.right": torch.ones(1, 32)}
    return {
        "directory": (lambda p: p.mkdir(), "nextx_base_offset.safetensors is not a regular file ({p}). Restore the "
                      "file nextx wrote, or remove this checkpoint."),
        "dangling symlink": (lambda p: p.symlink_to(p.parent / "gone"), "nextx_base_offset.safetensors is not a "
                             "regular file ({p}). Restore the file nextx wrote, or remove this checkpoint."),
        "fifo": (lambda p: os.mkfifo(p), "nextx_base_offset.safetensors is not a regular file ({p}). Restore the file "
                 "nextx wrote, or remove this checkpoint."),
        "orphan right": (lambda p: save_file({f"{name}.right": torch.ones(1, 32)}, p),
                         f"base offset key '{name}.right' is not one of a <module>.left / <module>.right pair ({{p}})."),
        "unknown key": (lambda p: save_file({**good, "extra": torch.ones(1)}, p),
                        "base offset key 'extra' is not one of a <module>.left / <module>.right pair ({p})."),
        "int32": (lambda p: save_file({k: v.int() for k, v in good.items()}, p),
                  f"base offset of {name} is malformed ({{p}})."),
        "absent module": (lambda p: save_file({"model.nope.left": torch.ones(64, 1), "model.nope.right": torch.ones(1, 32)},
                                              p), "base offset of model.nope does not fit the adapter (no such module) "
                          "({c}). The offset file belongs to another run: remove this checkpoint."),
        "1×k left": (lambda p: save_file({f"{name}.left": torch.ones(1, 1), f"{name}.right": torch.ones(1, 32)}, p),
                     f"base offset of {name} does not fit the adapter (1×32, the weight is 48×32) ({{c}}). The offset "
                     "file belongs to another run: remove this checkpoint."),
    }


@pytest.mark.parametrize("case", list(_offset_cases("x")))
def test_the_offset_reader_refuses_what_it_cannot_use(tmp_path, base_model, case):
    from nextx import load_run

    make_lora_run(tmp_path / "run", base_model, [10, 20], targets=["gate_proj"])
    name = "model.layers.0.mlp.gate_proj"
    checkpoint = tmp_path / "run" / "checkpoint-20"
    slot = checkpoint / "nextx_base_offset.safetensors"
    write, message = _offset_cases(name)[case]
    write(slot)
    with raises_whole(NextxError, message.format(p=slot, c=checkpoint)):
        load_run(tmp_path / "run").describe()


def test_rank_zero_is_named_as_such(tmp_path, base_model):
    make_lora_run(tmp_path / "run", base_model, [10])
    config = tmp_path / "run" / "checkpoint-10" / "adapter_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "r": 0}))
    with raises_whole(NextxError, f"adapter_config.json has r = 0, not a positive integer ({config}). Set \"r\" to the "
                                  "LoRA rank the adapter was trained with."):
        load_run(tmp_path / "run")


def test_an_unreadable_directory_is_one_line_naming_it(tmp_path, base_model, monkeypatch):
    """(Root reads everything: the denial is simulated where the OS would raise it.)"""
    from pathlib import Path

    from nextx.io.discover import discover_checkpoints

    make_lora_run(tmp_path / "run", base_model, [10, 20])
    locked = tmp_path / "run" / "checkpoint-20"
    real = Path.iterdir

    def iterdir(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda self, **k: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied", str(self))) if locked in self.parents else real_exists(self, **k))
    with raises_whole(NextxError, f"cannot read {locked / 'adapter_config.json'}: Permission denied ({tmp_path / 'run'}). "
                                  "Check the run's permissions (it must be readable by this user)."):
        discover_checkpoints(tmp_path / "run")
