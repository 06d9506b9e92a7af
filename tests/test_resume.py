"""Resumed runs keep their in-loop jumps: TRL's resume_from_checkpoint (through `nextx.train.train`)
restores the base offsets, the history and the jump record and redoes a jump due at the resume step,
so interrupted + resumed equals uninterrupted (relative tolerance 1e-5); the final adapter is a plain
PEFT adapter of the true weights; a resume that cannot be exact refuses with one line."""

import json

import pytest
import torch
from helpers import raises_whole

from nextx import load_run
from nextx.lowrank import FactoredUpdate, dense_of

pytest.importorskip("trl")

from transformers import TrainerCallback  # noqa: E402

from nextx.errors import NextxError  # noqa: E402
from nextx.train.config import GRPORunConfig  # noqa: E402
from nextx.train.grpo import train  # noqa: E402


class StopAfterSave(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True
        return control


def _config(out, model, **kwargs):
    settings = dict(output_dir=str(out), model=str(model), task="addition", steps=7, save_every=1, prompts_per_step=4,
                    num_generations=4, lora_r=4, lora_alpha=8, learning_rate=3e-3, save_state=True, next_at=2,
                    next_every=2, next_method="linear", next_ahead=1, next_horizon=1)
    return GRPORunConfig(**{**settings, **kwargs})


def _true_deltas(run_dir, step):
    run = load_run(run_dir)
    index = run.steps.index(step)
    return {name: dense_of(run.deltas(name), FactoredUpdate({index: 1.0})) for name in run.modules}


def test_interrupted_and_resumed_equals_uninterrupted_with_jumps_before_and_after(tmp_path, warm_tiny):
    whole = train(_config(tmp_path / "whole", warm_tiny), log=lambda m: None)
    cut = tmp_path / "cut"
    train(_config(cut, warm_tiny), callbacks=[StopAfterSave(4)], log=lambda m: None)
    assert not (cut / "checkpoint-5").exists()
    resumed = train(_config(cut, warm_tiny), resume=True, log=lambda m: None)
    assert [j["step"] for j in whole.jumps] == [2, 4, 6]
    assert [j["step"] for j in resumed.jumps] == [2, 4, 6]  # 2 restored, 4 redone at the resume step, 6 new
    for step in (5, 7):
        expected, got = _true_deltas(whole.path, step), _true_deltas(cut, step)
        for name in expected:
            scale = float(expected[name].norm())
            assert float((got[name] - expected[name]).norm()) <= 1e-5 * scale, (step, name)
    # the final adapter is plain PEFT: base + adapter = the true weights of the last checkpoint
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    assert resumed.final_adapter == cut / "final-adapter"
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(warm_tiny), resumed.final_adapter)
    merged = dict(plain.merge_and_unload().named_modules())
    base = dict(AutoModelForCausalLM.from_pretrained(warm_tiny).named_modules())
    truth = _true_deltas(cut, 7)
    for name, delta in truth.items():
        assert torch.allclose(merged[name].weight.double() - base[name].weight.double(), delta, atol=1e-6)
    record = json.loads((cut / "nextx-train.json").read_text())
    assert record["resumed_from"] == str(cut / "checkpoint-4") and record["final_adapter"] == str(cut / "final-adapter")
    assert "Not a plain PEFT adapter" in (cut / "checkpoint-3" / "README.md").read_text()


def test_resume_without_optimizer_state_refuses(tmp_path, warm_tiny):
    out = tmp_path / "run"
    train(_config(out, warm_tiny, steps=2, save_state=False, next_at=None), log=lambda m: None)
    with raises_whole(NextxError, "the checkpoint holds no optimizer state: resuming would restart Adam, not continue "
                                  f"the run ({out / 'checkpoint-2'}). Train with --save-state to resume exactly (or "
                                  "start a new run with --init-adapter)."):
        train(_config(out, warm_tiny, steps=3, save_state=False, next_at=None), resume=True, log=lambda m: None)
