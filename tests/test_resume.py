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


def test_warm_next_fits_resume_from_the_fits_the_checkpoint_kept(tmp_path, warm_tiny):
    """``next_warm``: each NExt fit starts from the last one's MLPs, and every checkpoint keeps the fits
    as they were at its save (`nextx.jump.warm`), so the jump redone at the resume step and the next
    one fit from the same start as the uninterrupted run (relative 1e-5; this also needs the live
    history to list modules by name, as a run on disk does: NExt's fit depends on their order).
    Without them (an older checkpoint) the fits start cold, the log says so, and the weights differ."""
    import shutil

    warm = dict(next_method="next", next_warm=True, next_epochs=200)
    whole = train(_config(tmp_path / "whole", warm_tiny, **warm), log=lambda m: None)
    assert [j["step"] for j in whole.jumps if j["jumped"]] == [2, 4, 6]
    assert (whole.path / "checkpoint-4" / "nextx-warm" / "next" / "predictor.json").exists()
    for name, drop in (("cut", False), ("cold", True)):
        cut = tmp_path / name
        train(_config(cut, warm_tiny, **warm), callbacks=[StopAfterSave(4)], log=lambda m: None)
        if drop:
            shutil.rmtree(cut / "checkpoint-4" / "nextx-warm")
        lines = []
        train(_config(cut, warm_tiny, **warm), resume=True, log=lines.append)
        assert any("checkpoint-4 has no nextx-warm/" in line for line in lines) == drop
        worst = 0.0
        for step in (5, 7):
            expected, got = _true_deltas(whole.path, step), _true_deltas(cut, step)
            worst = max(worst, *(float((got[n] - expected[n]).norm()) / float(expected[n].norm()) for n in expected))
        assert (worst > 1e-3) if drop else (worst <= 1e-5), (name, worst)


def test_resume_without_optimizer_state_refuses(tmp_path, warm_tiny):
    out = tmp_path / "run"
    train(_config(out, warm_tiny, steps=2, save_state=False, next_at=None), log=lambda m: None)
    with raises_whole(NextxError, "the checkpoint holds no optimizer state: resuming would restart Adam, not continue "
                                  f"the run ({out / 'checkpoint-2'}). Train with --save-state to resume exactly (or "
                                  "start a new run with --init-adapter)."):
        train(_config(out, warm_tiny, steps=3, save_state=False, next_at=None), resume=True, log=lambda m: None)


def test_a_jumped_base_resumed_with_the_runs_own_checkpoint_continues_like_the_in_loop_jump(tmp_path, warm_tiny,
                                                                                            cli_runner):
    """`extrapolate --format base` + TRL resume_from_checkpoint on the new base (the path verl/OpenRLHF users
    take between runs: LoRA, Adam, scheduler and RNG kept) = the in-loop offset jump (relative 1e-5)."""
    from safetensors.torch import load_file

    from nextx.cli.main import cli

    settings = dict(steps=4, next_every=0)  # one jump, at step 2
    in_loop = train(_config(tmp_path / "loop", warm_tiny, **settings), log=lambda m: None)
    between = tmp_path / "between"
    train(_config(between, warm_tiny, **{**settings, "next_at": None}), callbacks=[StopAfterSave(2)], log=lambda m: None)
    base = tmp_path / "jumped-base"
    result = cli_runner.invoke(cli, ["extrapolate", str(between), "-o", str(base), "--method", "linear", "--ahead", "1",
                                     "--horizon", "1", "--format", "base"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(base) and (base / "config.json").is_file()
    train(_config(between, base, **{**settings, "next_at": None}), resume=between / "checkpoint-2", log=lambda m: None)
    w0, w0_jumped = load_file(warm_tiny / "model.safetensors"), load_file(base / "model.safetensors")
    expected, got = _true_deltas(in_loop.path, 4), _true_deltas(between, 4)  # each against its own base
    for name in expected:
        truth = w0[f"{name}.weight"].double() + expected[name]
        mine = w0_jumped[f"{name}.weight"].double() + got[name]
        assert float((mine - truth).norm()) <= 1e-5 * float(expected[name].norm()), name


def test_offset_checkpoints_are_flagged_exported_plain_and_never_read_without_their_offset(tmp_path, warm_tiny,
                                                                                           cli_runner):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from nextx.cli.main import cli

    out = train(_config(tmp_path / "run", warm_tiny, steps=4, next_every=1, save_state=False), log=lambda m: None).path
    result = cli_runner.invoke(cli, ["inspect", str(out), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["offset_steps"] == [3, 4]
    assert "carry base offsets" in cli_runner.invoke(cli, ["inspect", str(out)]).stderr
    plain = tmp_path / "plain"
    result = cli_runner.invoke(cli, ["export", str(out / "checkpoint-3"), "-o", str(plain)])
    assert result.exit_code == 0 and result.stdout.strip() == str(plain), result.output
    merged = dict(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(warm_tiny), plain)
                  .merge_and_unload().named_modules())
    base = dict(AutoModelForCausalLM.from_pretrained(warm_tiny).named_modules())
    for name, delta in _true_deltas(out, 3).items():
        assert torch.allclose(merged[name].weight.double() - base[name].weight.double(), delta, atol=1e-6)
    (out / "checkpoint-4" / "nextx_base_offset.safetensors").unlink()  # a kill between the save and the offset
    with raises_whole(NextxError, "checkpoint at step 4 was saved after a jump folded into the base but has no "
                                  "nextx_base_offset.safetensors: its weights would read as other than were trained "
                                  f"({out / 'checkpoint-4'}). It was interrupted while saving: delete it (and later "
                                  "ones) and resume from the one before."):
        load_run(out)


def test_init_adapter_with_an_offset_is_refused_with_a_hint_that_works_as_written(tmp_path, warm_tiny, cli_runner):
    import shlex

    from nextx.cli.main import cli

    out = train(_config(tmp_path / "run", warm_tiny, steps=4, next_every=1, save_state=False), log=lambda m: None).path
    checkpoint = out / "checkpoint-3"
    with pytest.raises(NextxError) as refused:
        train(_config(tmp_path / "again", warm_tiny, init_adapter=str(checkpoint), steps=1, next_at=None),
              log=lambda m: None)
    hint = str(refused.value.hint)
    plain = tmp_path / "run-checkpoint-3-plain"
    assert hint == f"Export it as a plain adapter first: nextx export {checkpoint} -o {plain}"
    command = shlex.split(hint.split(": ", 1)[1])
    result = cli_runner.invoke(cli, command[1:])  # the hint, as written
    assert result.exit_code == 0, result.output
    train(_config(tmp_path / "again", warm_tiny, init_adapter=str(plain), steps=1, next_at=None), log=lambda m: None)
