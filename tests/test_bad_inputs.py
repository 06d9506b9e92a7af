"""Bad input: one clear line on stderr, exit 1, nothing on stdout, no traceback."""

import json
import os
import shutil

import pytest
import torch
from helpers import make_full_run, make_lora_run, raises_whole
from safetensors.torch import load_file, save_file

from nextx.cli.main import cli
from nextx.errors import CheckpointError


def fails(runner, args, message):
    """Exit 1, nothing on stdout, and exactly "Error: " + ``message`` on stderr (the whole line; its
    whitespace normalised, as the console may wrap it in a narrow terminal)."""
    result = runner.invoke(cli, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    err = " ".join(result.stderr.split())
    assert err == "Error: " + message, err
    return err


LAYOUTS = ("Tried layouts: trl (^checkpoint-(\\d+)$), verl (^global_step_(\\d+)$), openrlhf (^global_step(\\d+)_hf$), "
           "steps (^(?:step[_-]?)?(\\d+)$).")


@pytest.fixture
def run_copy(trl_run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(trl_run, target)
    return target


def test_missing_and_empty_run(cli_runner, tmp_path):
    fails(cli_runner, ["inspect", tmp_path / "nope"], f"run directory does not exist ({tmp_path / 'nope'}).")
    (tmp_path / "empty").mkdir()
    fails(cli_runner, ["inspect", tmp_path / "empty"], f"run directory is empty ({tmp_path / 'empty'}).")


def test_no_checkpoints_names_the_layouts_tried(cli_runner, tmp_path):
    (tmp_path / "run" / "logs").mkdir(parents=True)
    fails(cli_runner, ["inspect", tmp_path / "run"],
          f"no checkpoints found ({tmp_path / 'run'}). {LAYOUTS} Pass --checkpoint STEP=PATH for each checkpoint.")


def test_single_adapter_is_not_a_run(cli_runner, trl_run):
    fails(cli_runner, ["inspect", trl_run / "checkpoint-10"],
          f"no checkpoints found ({trl_run / 'checkpoint-10'}). {LAYOUTS} It holds a single checkpoint, not a run. "
          "Pass --checkpoint STEP=PATH for each checkpoint.")


def test_mixed_layouts(cli_runner, run_copy):
    shutil.copytree(run_copy / "checkpoint-10", run_copy / "global_step_5")
    fails(cli_runner, ["inspect", run_copy], "mixed checkpoint layouts: trl (checkpoint-10) and verl (global_step_5) "
          f"({run_copy}). Pass --layout to choose one.")


def test_different_target_modules(cli_runner, tmp_path, base_model):
    make_lora_run(tmp_path / "run", base_model, [10, 20])
    make_lora_run(tmp_path / "other", base_model, [30], targets=["q_proj", "v_proj"])
    shutil.move(tmp_path / "other" / "checkpoint-30", tmp_path / "run" / "checkpoint-30")
    fails(cli_runner, ["inspect", tmp_path / "run"], "checkpoint at step 30 trains different modules than step 10 "
          f"(lacks model.layers.0.mlp.down_proj) ({tmp_path / 'run' / 'checkpoint-30'}). All checkpoints of a run "
          "must share target modules; pass the consistent ones with --checkpoint.")


def test_shapes_that_do_not_match_the_base(cli_runner, trl_run, tmp_path):
    from helpers import build_tiny_model  # noqa: F401 - a base of another width
    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                                 num_attention_heads=2, num_key_value_heads=1)).save_pretrained(tmp_path / "other")
    fails(cli_runner, ["inspect", trl_run, "--base", tmp_path / "other"], "shape of model.layers.0.mlp.down_proj.weight "
          f"is [16, 24] in the base but [32, 48] in the adapter ({tmp_path / 'other'}). Pass the base model the run "
          "was trained from with --base.")


def test_truncated_safetensors(cli_runner, run_copy):
    path = run_copy / "checkpoint-30" / "adapter_model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    fails(cli_runner, ["inspect", run_copy], "cannot read safetensors file: Error while deserializing header: "
          f"incomplete metadata, file not fully covered ({run_copy / 'checkpoint-30' / 'adapter_model.safetensors'}). "
          "The file is corrupt or truncated; re-save or re-download this checkpoint.")


def test_garbage_safetensors(cli_runner, run_copy):
    (run_copy / "checkpoint-20" / "adapter_model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    fails(cli_runner, ["inspect", run_copy], "cannot read safetensors file: Error while deserializing header: "
          f"invalid header length ({run_copy / 'checkpoint-20' / 'adapter_model.safetensors'}). The file is corrupt "
          "or truncated; re-save or re-download this checkpoint.")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_finite_check_in_the_tensors_own_dtype(dtype, tmp_path):
    """`checked` sums in the tensor's dtype (no float32 copy of a large bf16 tensor); a finite fp16
    tensor whose sum overflows fp16 still passes, through the element-wise check."""
    from nextx.io.tensors import checked

    large = torch.full((4096,), 60000.0 if dtype == torch.float16 else 1.0, dtype=dtype)
    assert checked(large, "w", tmp_path) is large
    for value in (float("nan"), float("inf"), float("-inf")):
        bad = large.clone()
        bad[7] = value
        with raises_whole(CheckpointError, f"tensor w contains NaN or Inf ({tmp_path}). The run diverged or the "
                                           "file is damaged; drop this checkpoint."):
            checked(bad, "w", tmp_path)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_tensor_names_checkpoint_and_tensor(cli_runner, run_copy, value):
    path = run_copy / "checkpoint-40" / "adapter_model.safetensors"
    tensors = load_file(path)
    key = "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"
    tensors[key][0, 0] = value
    save_file(tensors, path)
    fails(cli_runner, ["inspect", run_copy], f"tensor {key} contains NaN or Inf ({path}). The run diverged or the "
          "file is damaged; drop this checkpoint.")


def test_duplicate_steps(cli_runner, trl_run):
    fails(cli_runner, ["inspect", "--checkpoint", f"10={trl_run / 'checkpoint-10'}",
                       "--checkpoint", f"10={trl_run / 'checkpoint-20'}"],
          f"duplicate step 10: {trl_run / 'checkpoint-10'} and {trl_run / 'checkpoint-20'}. Remove one of them, or "
          "list the checkpoints with --checkpoint STEP=PATH.")


def test_duplicate_steps_from_trainer_state(cli_runner, run_copy):
    (run_copy / "checkpoint-20" / "trainer_state.json").write_text(json.dumps({"global_step": 10}))
    fails(cli_runner, ["inspect", run_copy],
          f"duplicate step 10: {run_copy / 'checkpoint-10'} and {run_copy / 'checkpoint-20'}. Remove one of them, or "
          "list the checkpoints with --checkpoint STEP=PATH.")


def test_bad_checkpoint_argument(cli_runner, trl_run):
    fails(cli_runner, ["inspect", "--checkpoint", str(trl_run / "checkpoint-10")],
          f"--checkpoint '{trl_run / 'checkpoint-10'}' is not STEP=PATH. Example: --checkpoint 10=runs/a/step10")


def test_lora_alpha_zero_is_refused_until_given(cli_runner, run_copy):
    for ckpt in run_copy.iterdir():
        config = json.loads((ckpt / "adapter_config.json").read_text())
        config["lora_alpha"] = 0
        (ckpt / "adapter_config.json").write_text(json.dumps(config))
    fails(cli_runner, ["inspect", run_copy], "adapter_config.json has lora_alpha 0 (as verl's model_merger writes), "
          f"which would make every update zero ({run_copy / 'checkpoint-10' / 'adapter_config.json'}). Pass the alpha "
          "used in training with --lora-alpha.")
    result = cli_runner.invoke(cli, ["inspect", str(run_copy), "--lora-alpha", "8", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["lora_alpha"] == 8.0


def test_pickle_adapters_need_opt_in(cli_runner, run_copy):
    for ckpt in run_copy.iterdir():
        tensors = load_file(ckpt / "adapter_model.safetensors")
        torch.save(tensors, ckpt / "adapter_model.bin")
        (ckpt / "adapter_model.safetensors").unlink()
    fails(cli_runner, ["inspect", run_copy], "only a pickle file adapter_model.bin was found, and nextx does not "
          f"unpickle by default ({run_copy / 'checkpoint-10'}). Convert it to safetensors, or pass --allow-pickle to "
          "load it with torch.load(weights_only=True).")
    result = cli_runner.invoke(cli, ["inspect", str(run_copy), "--allow-pickle", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["modules"]) == 14


def test_dora_is_refused(cli_runner, run_copy):
    config_path = run_copy / "checkpoint-10" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["use_dora"] = True
    config_path.write_text(json.dumps(config))
    fails(cli_runner, ["inspect", run_copy], "DoRA adapters are not supported: the magnitude vector makes the update "
          f"non-low-rank ({run_copy / 'checkpoint-10' / 'adapter_config.json'}). Train with use_dora=False to use nextx.")


def test_incomplete_checkpoint(cli_runner, run_copy):
    (run_copy / "checkpoint-90").mkdir()
    fails(cli_runner, ["inspect", run_copy], "checkpoint has neither adapter_config.json nor model.safetensors "
          f"({run_copy / 'checkpoint-90'}). Delete the incomplete checkpoint or point nextx at the directory holding "
          "the weights.")


def test_fsdp_sharded_checkpoint_is_named(cli_runner, run_copy):
    """A TRL checkpoint FSDP saved as torch.distributed.checkpoint shards: named, never unpickled."""
    shards = run_copy / "checkpoint-90" / "pytorch_model_fsdp_0"
    shards.mkdir(parents=True)
    (shards / "__0_0.distcp").write_bytes(b"\x80\x04 not read")
    (shards / ".metadata").write_bytes(b"\x80\x04 not read either")
    fails(cli_runner, ["inspect", run_copy], "checkpoint holds FSDP sharded weights (torch.distributed.checkpoint "
          f".distcp files), which nextx does not read: their metadata is a pickle ({run_copy / 'checkpoint-90'}). "
          "Save full weights: fsdp_state_dict_type: FULL_STATE_DICT in the accelerate config writes the adapter as "
          "adapter_model.safetensors (or load the checkpoint in your trainer and call save_pretrained).")


def test_full_weights_need_a_base(cli_runner, tmp_path, base_model):
    make_full_run(tmp_path / "run", base_model, [10, 20])
    fails(cli_runner, ["inspect", tmp_path / "run"], "full-weight checkpoints need the initial weights W₀ "
          f"({tmp_path / 'run'}). Pass --base PATH (the model RL started from).")


def test_full_weights_against_the_wrong_base(cli_runner, tmp_path, base_model):
    make_full_run(tmp_path / "run", base_model, [10, 20])
    ckpt = tmp_path / "run" / "checkpoint-10"
    fails(cli_runner, ["inspect", "--checkpoint", f"10={ckpt}", "--base", ckpt], "no 2-D weight differs from the "
          f"base in any checkpoint ({ckpt.parent}). Check that --base is the model the run started from.")


def test_unexpected_errors_exit_3_without_traceback(cli_runner, trl_run, monkeypatch):
    import nextx.inspection

    def boom(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(nextx.inspection, "trajectories", boom)
    result = cli_runner.invoke(cli, ["inspect", str(trl_run)])
    assert result.exit_code == 3 and "--debug" in result.stderr and "Traceback" not in result.stderr
    result = cli_runner.invoke(cli, ["--debug", "inspect", str(trl_run)])
    assert isinstance(result.exception, ZeroDivisionError)


# -- fit / extrapolate / backtest ------------------------------------------------------------------

def test_predictor_from_another_run(cli_runner, trl_run, tmp_path, base_model):
    make_lora_run(tmp_path / "other", base_model, [10, 20, 30], targets=["q_proj"])
    pred = tmp_path / "pred"
    assert cli_runner.invoke(cli, ["fit", str(tmp_path / "other"), "-o", str(pred), "--method", "linear"]).exit_code == 0
    fails(cli_runner, ["extrapolate", trl_run, "-o", tmp_path / "out", "--predictor", pred, "--coef", "1"],
          "the predictor was fitted on a run without module model.layers.0.mlp.down_proj "
          f"({tmp_path / 'other'}). Fit a predictor on this run with: nextx fit RUN -o DIR")
    assert not (tmp_path / "out").exists()


def test_predictor_with_other_shapes(cli_runner, trl_run, tmp_path):
    pred = tmp_path / "pred"
    assert cli_runner.invoke(cli, ["fit", str(trl_run), "-o", str(pred), "--method", "stay"]).exit_code == 0
    meta = json.loads((pred / "predictor.json").read_text())
    meta["fit_info"]["modules"]["model.layers.0.self_attn.q_proj"] = [64, 64]
    (pred / "predictor.json").write_text(json.dumps(meta))
    fails(cli_runner, ["extrapolate", trl_run, "-o", tmp_path / "out", "--predictor", pred, "--coef", "1"],
          "module model.layers.0.self_attn.q_proj is [32, 32] in this run but [64, 64] in the predictor's run "
          f"({trl_run}). Fit a predictor on this run with: nextx fit RUN -o DIR")


def test_not_a_predictor(cli_runner, trl_run, tmp_path):
    fails(cli_runner, ["extrapolate", trl_run, "-o", tmp_path / "out", "--predictor", tmp_path, "--coef", "1"],
          f"not a nextx predictor (no predictor.json) ({tmp_path}). Create one with: nextx fit RUN -o DIR")


@pytest.mark.parametrize("args,message", [
    (["--coef", "-1"], "a jump of -10 steps ahead is not a forward jump. Pass --ahead N with N ≥ 0 steps past "
                       "the last checkpoint (step 80)."),
    (["--coef", "nan"], "coefficient α = nan is not a number. Pass --ahead N (steps) instead."),
    (["--ahead", "-5"], "a jump of -5 steps ahead is not a forward jump. Pass --ahead N with N ≥ 0 steps past the "
                        "last checkpoint (step 80)."),
    (["--ahead", "801"], "a jump of 801 steps past step 80 is more than 10× the run's length. Jump at most 800 "
                         "steps ahead (--to-step ≤ 880); the run has seen 80 steps."),
    (["--to-step", "50"], "--to-step 50 is before the last checkpoint (step 80). Extrapolation goes forward: pass a "
                          "later step."),
])
def test_coefficient_out_of_range(cli_runner, trl_run, tmp_path, args, message):
    fails(cli_runner, ["extrapolate", trl_run, "-o", tmp_path / "out", "--method", "linear", *args], message)
    assert not (tmp_path / "out").exists()


def test_too_few_checkpoints_for_the_horizon(cli_runner, trl_run, tmp_path):
    hint = "Save checkpoints more often, or lower --horizon / --holdout."
    fails(cli_runner, ["fit", trl_run, "-o", tmp_path / "p", "--horizon", "8"],
          f"fitting next needs at least 9 checkpoints, the run has 8. {hint}")
    fails(cli_runner, ["backtest", trl_run, "--holdout", "3", "--horizon", "5"],
          f"a backtest with --holdout 3 and --horizon 5 needs at least 9 checkpoints, the run has 8. {hint}")
    fails(cli_runner, ["backtest", "--checkpoint", f"10={trl_run / 'checkpoint-10'}", "--methods", "linear",
                       "--holdout", "1"], f"a backtest with --holdout 1 needs at least 3 checkpoints, the run has 1. {hint}")


def test_output_exists(cli_runner, trl_run, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    fails(cli_runner, ["extrapolate", trl_run, "-o", tmp_path / "out", "--method", "stay", "--coef", "1"],
          f"output already exists ({tmp_path / 'out'}). Pass --force to replace it, or choose another -o.")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_merged_defaults_to_the_adapters_base(cli_runner, trl_run, base_model, tmp_path):
    """No --base: the adapters' base_model_name_or_path (a local dir here) is W₀, as in PEFT; the
    refusal when it cannot be found is in the bad-input table."""
    args = ["extrapolate", str(trl_run), "--method", "stay", "--coef", "1", "--format", "merged"]
    for name, extra in (("named", []), ("given", ["--base", str(base_model)])):
        result = cli_runner.invoke(cli, [*args, "-o", str(tmp_path / name), *extra])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "named" / "model.safetensors").read_bytes() == (tmp_path / "given" / "model.safetensors").read_bytes()


def test_coef_and_to_step_are_exclusive(cli_runner, trl_run, tmp_path):
    result = cli_runner.invoke(cli, ["extrapolate", str(trl_run), "-o", str(tmp_path / "o"), "--coef", "1",
                                     "--to-step", "100"])
    assert result.exit_code == 2 and "exactly one of" in result.stderr
    result = cli_runner.invoke(cli, ["extrapolate", str(trl_run), "-o", str(tmp_path / "o"), "--ahead", "10",
                                     "--to-step", "100"])
    assert result.exit_code == 2 and "exactly one of" in result.stderr and not (tmp_path / "o").exists()


def test_a_long_jump_in_steps_is_not_capped_in_alpha_units(cli_runner, trl_run, tmp_path):
    """linear --to-step 300 on a run ending at 80 (10-step checkpoints) is 22 intervals ahead: allowed."""
    result = cli_runner.invoke(cli, ["extrapolate", str(trl_run), "-o", str(tmp_path / "o"), "--method", "linear",
                                     "--to-step", "300", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ahead_steps"] == 220 and payload["coef"] == pytest.approx(22.0)


@pytest.mark.parametrize("where", ["run", "run/checkpoint-80", "run/checkpoint-160", "run/checkpoint-80/sub", "."])
def test_output_never_touches_the_source_run(cli_runner, run_copy, tmp_path, where):
    """-o RUN --force, -o RUN/checkpoint-LAST, -o RUN/checkpoint-NEW, or a dir containing the run: refused,
    the run byte-identical afterwards."""
    before = {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()}
    out = tmp_path / where
    protected = {"run": run_copy / "checkpoint-10", "run/checkpoint-80": out, "run/checkpoint-160": run_copy,
                 "run/checkpoint-80/sub": out.parent, ".": run_copy / "checkpoint-10"}[where]  # the first source it hits
    fails(cli_runner, ["extrapolate", run_copy, "-o", out, "--method", "linear", "--ahead", "10", "--force"],
          f"the output would overwrite or add to the run it is read from ({out}). Write outside {protected} "
          f"(e.g. -o {protected.parent / (protected.name + '-next')}).")
    assert {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()} == before


def test_merged_dtype_is_written_into_config(cli_runner, trl_run, base_model, tmp_path):
    out = tmp_path / "out"
    result = cli_runner.invoke(cli, ["extrapolate", str(trl_run), "-o", str(out), "--method", "linear", "--ahead", "10",
                                     "--format", "merged", "--base", str(base_model), "--dtype", "bfloat16"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"


def test_format_both_prints_the_adapter_path(cli_runner, trl_run, base_model, tmp_path):
    out = tmp_path / "out"
    result = cli_runner.invoke(cli, ["extrapolate", str(trl_run), "-o", str(out), "--method", "linear", "--ahead", "10",
                                     "--format", "both", "--base", str(base_model)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out / "adapter")  # what $(…) hands a trainer's --init-adapter


def test_error_text_is_printed_literally(cli_runner, tmp_path):
    """User text with rich markup ([/x], [bold red]) is printed as is, never interpreted."""
    fails(cli_runner, ["inspect", tmp_path / "[bold red]x[/]"], f"run directory does not exist ({tmp_path / '[bold red]x[/]'}).")


def test_train_refuses_a_non_empty_output(cli_runner, tmp_path):
    (tmp_path / "run" / "checkpoint-10").mkdir(parents=True)
    pytest.importorskip("trl")
    fails(cli_runner, ["train", "-o", tmp_path / "run", "--steps", "1", "--save-every", "1"],
          "the output directory is not empty: a new run would mix its checkpoints with the old ones "
          f"({tmp_path / 'run'}). Choose another -o, or pass --force to replace it.")
    assert (tmp_path / "run" / "checkpoint-10").is_dir()


def test_pickled_adapters_are_refused_by_eval(cli_runner, tmp_path, trl_run):
    pytest.importorskip("trl")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    shutil.copy(trl_run / "checkpoint-10" / "adapter_config.json", adapter)
    (adapter / "adapter_model.bin").write_bytes(b"not unpickled")
    fails(cli_runner, ["eval", adapter], f"the adapter is a pickle (adapter_model.bin); nextx does not unpickle by "
          f"default ({adapter}). Convert it to safetensors (PEFT: save_pretrained(..., safe_serialization=True)).")


def test_integer_lora_factors_are_refused(cli_runner, run_copy):
    for step in (10, 20, 30, 40, 50, 60, 70, 80):
        path = run_copy / f"checkpoint-{step}" / "adapter_model.safetensors"
        tensors = load_file(path)
        save_file({k: v.to(torch.int32) if "lora_A" in k else v for k, v in tensors.items()}, path)
    fails(cli_runner, ["inspect", run_copy], "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight is int32, "
          f"not a float16/bfloat16/float32/float64 LoRA factor ({run_copy / 'checkpoint-10'}). Dequantize the adapter "
          "before reading it with nextx.")


def test_shard_index_paths_must_stay_inside_the_base(cli_runner, trl_run, base_model, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(base_model, base)
    (base / "model.safetensors").rename(base / "shard.safetensors")
    keys = list(load_file(base / "shard.safetensors"))
    weight_map = {k: "../outside/shard.safetensors" if i == 0 else "shard.safetensors" for i, k in enumerate(keys)}
    (base / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    fails(cli_runner, ["extrapolate", trl_run, "-o", tmp_path / "out", "--method", "linear", "--ahead", "10",
                       "--format", "merged", "--base", base],
          "the shard index names a file outside the model directory: '../outside/shard.safetensors' "
          f"({base / 'model.safetensors.index.json'}). Shard names must be plain file names inside the directory.")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("url", ["hf://org/run/../../etc", "hf://org/run@main/./x", "hf://org/run/a/../b"])
def test_hub_subdir_cannot_leave_the_repository(cli_runner, url):
    fails(cli_runner, ["inspect", url], f"{url!r}: SUBDIR must be a path inside the repository (no '..', '.' or "
          "leading '/').")


def test_non_finite_outputs_are_refused(cli_runner, run_copy, tmp_path):
    """Factors that overflow float16 when written: refused with the module named, nothing written."""
    for step in (10, 20, 30, 40, 50, 60, 70, 80):
        path = run_copy / f"checkpoint-{step}" / "adapter_model.safetensors"
        save_file({k: v * 1e4 * step if "lora_B" in k else v for k, v in load_file(path).items()}, path)
    fails(cli_runner, ["extrapolate", run_copy, "-o", tmp_path / "out", "--method", "linear", "--ahead", "10",
                       "--dtype", "float16"], "the extrapolated adapter of model.layers.0.mlp.down_proj is not finite in "
          f"float16 ({run_copy}). Jump less far (--ahead), or write --dtype float32.")
    assert not (tmp_path / "out").exists()


def test_train_checks_its_inputs_before_force_removes_anything_and_holds_one_lock(tmp_path, cli_runner, warm_tiny):
    """`train -o X --force` with an input inside X (or X inside an input) refuses and removes nothing;
    a second `train` to the same -o while one runs is refused."""
    from nextx.io.write import output_lock

    out = tmp_path / "run"
    adapter = out / "checkpoint-2"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    for extra, flag, where in ((["--init-adapter", str(adapter)], "--init-adapter", adapter),
                               (["--model", str(out)], "--model", out)):
        fails(cli_runner, ["train", "-o", str(out), "--force", "--steps", "2", "--save-every", "1", *extra],
              f"the run directory would hold or overwrite the run's own {flag} ({out}). Write the run elsewhere (-o), "
              f"outside {where}.")
        assert (adapter / "adapter_config.json").exists()  # nothing removed
    inside = adapter / "run"  # the run writing into its own --init-adapter
    fails(cli_runner, ["train", "-o", str(inside), "--init-adapter", str(adapter), "--steps", "2", "--save-every", "1"],
          f"the run directory would hold or overwrite the run's own --init-adapter ({inside}). Write the run elsewhere "
          f"(-o), outside {adapter}.")
    busy = tmp_path / "busy"
    with output_lock(busy.resolve()):
        fails(cli_runner, ["train", "-o", str(busy), "--model", str(warm_tiny), "--steps", "2", "--save-every", "1"],
              f"another nextx process (pid {os.getpid()}) is writing this output ({busy.resolve()}). Wait for it to "
              "finish, or choose another -o.")


def test_a_fifo_or_unreadable_adapter_file_is_refused_not_waited_on(cli_runner, tmp_path, trl_run):
    """A FIFO named adapter_model.safetensors would block the reader forever; an unreadable file is not
    called corrupt."""
    run = tmp_path / "run"
    shutil.copytree(trl_run, run)
    target = run / "checkpoint-20" / "adapter_model.safetensors"
    target.unlink()
    os.mkfifo(target)
    fails(cli_runner, ["inspect", run], f"adapter_model.safetensors is not a regular file ({target}). Point nextx at "
                                        "the checkpoint's files.")
    target.unlink()
    target.mkdir()
    fails(cli_runner, ["inspect", run], f"adapter_model.safetensors is not a regular file ({target}). Point nextx at "
                                        "the checkpoint's files.")


def test_control_characters_never_reach_the_terminal_raw(cli_runner, tmp_path):
    """Escape sequences in model text (a bank line) or in a path (an error) are shown as \\x1b…, never
    sent: they would clear the screen or retitle the window; ':x:' in a path is not an emoji."""
    bank = tmp_path / "bank.jsonl"
    line = "WHEN adding\x1b[2J. IF a column\x1b]0;pwned\x07 carries. THEN carry one."
    bank.write_text(json.dumps({"text": line, "source": "1+1=\x1b[31m"}) + "\n")
    result = cli_runner.invoke(cli, ["dgo", "bank", str(bank)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "\\x1b[2J" in result.stderr and "\\x07" in result.stderr
    odd = tmp_path / "run\x1b]0;title\x07:x:"
    result = cli_runner.invoke(cli, ["inspect", str(odd)])
    assert result.exit_code == 1 and "\x1b" not in result.stderr and ":x:" in result.stderr
    assert "run\\x1b]0;title\\x07:x:" in " ".join(result.stderr.split())


def test_train_names_a_missing_model_and_a_dataset_without_one(cli_runner, tmp_path):
    pytest.importorskip("trl")
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "1+1=", "answer": "2"}\n')
    fails(cli_runner, ["train", "-o", tmp_path / "r", "--model", tmp_path / "nonexistent"],
          f"--model is neither a model directory nor a Hub id (OWNER/NAME) ({tmp_path / 'nonexistent'}). Check the "
          "path, or pass the Hub id of the base model.")
    fails(cli_runner, ["train", "-o", tmp_path / "r", "--dataset", data],
          "--dataset needs --model: the embedded tiny model knows only the built-in tasks. Pass --model PATH or a Hub "
          "id (OWNER/NAME).")
    assert not (tmp_path / "r").exists()


def test_train_and_eval_name_a_model_mismatch_not_a_bug(cli_runner, tmp_path, warm_tiny, trl_run, base_model):
    """--lora-targets naming nothing, an --init-adapter or eval adapter of another model: one line, exit 1."""
    pytest.importorskip("trl")
    common = ["train", "-o", tmp_path / "r", "--model", warm_tiny, "--steps", "1", "--save-every", "1"]
    fails(cli_runner, [*common, "--lora-targets", ","], "--lora-targets names no module. E.g. --lora-targets "
                                                      "q_proj,v_proj, or all-linear.")
    fails(cli_runner, [*common, "--lora-targets", "nope_proj"], f"--lora-targets nope_proj names no module of the model "
          f"({warm_tiny}). Name its linear layers, e.g. q_proj,v_proj, or all-linear.")
    adapter = trl_run / "checkpoint-10"  # trained on the tests' 32-wide Llama, not the 96-wide tiny model
    result = cli_runner.invoke(cli, [*map(str, common), "--init-adapter", str(adapter)])
    err = " ".join(result.stderr.split())
    assert result.exit_code == 1 and err.startswith("Error: --init-adapter does not fit the base model"), err
    assert err.endswith("Use the adapter with the model it was trained on (its adapter_config.json names it).")
    result = cli_runner.invoke(cli, ["eval", str(adapter), "--base", str(warm_tiny)])
    err = " ".join(result.stderr.split())
    assert result.exit_code == 1 and err.startswith("Error: the adapter does not fit the base model"), err


def test_force_never_replaces_a_directory_holding_the_runs_files_through_symlinks(cli_runner, tmp_path, trl_run):
    """A checkpoint whose adapter file is a symlink into the output directory: --force would delete the
    run's own weights, then read the output."""
    run = tmp_path / "run"
    shutil.copytree(trl_run, run)
    out = tmp_path / "out"
    out.mkdir()
    weights = run / "checkpoint-20" / "adapter_model.safetensors"
    shutil.move(weights, out / "held.safetensors")
    weights.symlink_to(out / "held.safetensors")
    fails(cli_runner, ["extrapolate", run, "-o", out, "--method", "linear", "--ahead", "10", "--force"],
          f"the output would overwrite or add to the run it is read from ({out}). Write outside "
          f"{out / 'held.safetensors'} (e.g. -o {out / 'held.safetensors-next'}).")
    assert (out / "held.safetensors").is_file()


def test_stale_temp_dirs_of_an_output_with_glob_characters_are_removed(tmp_path):
    import subprocess
    import sys

    from nextx.io.write import atomic_output_dir

    out = tmp_path / "run[1]*"
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    (tmp_path / f".run[1]*.nextx-tmp-{dead}").mkdir()
    with atomic_output_dir(out) as tmp:
        (tmp / "x").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run[1]*"]


def test_zero3_partitioned_factors_name_the_fix(tmp_path, base_model):
    import torch
    from safetensors.torch import load_file as load

    from nextx import load_run

    run = make_lora_run(tmp_path / "run", base_model, [10], targets=["q_proj"])
    path = run / "checkpoint-10" / "adapter_model.safetensors"
    save_file({k: (torch.zeros(0) if "lora_A" in k else v) for k, v in load(path).items()}, path)
    with pytest.raises(CheckpointError, match=r"its LoRA factors are empty .*stage3_gather_16bit_weights_on_model_save"):
        load_run(run)


@pytest.fixture
def full_disk(tmp_path):
    """A real 16 KiB tmpfs (needs root or CAP_SYS_ADMIN; skipped, never faked, elsewhere)."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.parametrize(("name", "args", "option"), [
    ("out", ["extrapolate", "{run}", "-o", "{path}", "--method", "linear", "--ahead", "10"], "-o"),
    ("sigma.png", ["inspect", "{run}", "--plot", "{path}"], "--plot"),  # the PNG is written whole or not at all
])
def test_a_full_disk_gets_one_line_and_leaves_nothing(cli_runner, trl_run, full_disk, name, args, option):
    if option == "--plot":
        pytest.importorskip("matplotlib")
    path = full_disk / name
    fails(cli_runner, [a.format(run=trl_run, path=path) for a in args],
          f"cannot write the output: No space left on device ({path}). Free disk space or choose a writable {option}; "
          "nothing partial was left behind.")
    assert list(full_disk.iterdir()) == []


def test_train_on_a_full_disk_removes_the_partial_checkpoint(cli_runner, warm_tiny, full_disk):
    pytest.importorskip("trl")
    run = full_disk / "run"
    fails(cli_runner, ["train", "-o", run, "--model", warm_tiny, "--steps", "2", "--save-every", "1",
                       "--prompts-per-step", "4", "--num-generations", "4"],
          f"cannot write checkpoint-1: No space left on device ({run}). Free disk space and resume (nextx train "
          "--resume with --save-state) or train again; the partial checkpoint was removed.")
    assert not (run / "checkpoint-1").exists()


def test_a_finite_base_tensor_that_overflows_float16_is_named_not_blamed_on_the_run(cli_runner, tmp_path, trl_run,
                                                                                    base_model):
    base = tmp_path / "base"
    shutil.copytree(base_model, base)
    tensors = load_file(base / "model.safetensors")
    tensors["model.embed_tokens.weight"] = torch.full_like(tensors["model.embed_tokens.weight"], 1e6)
    save_file(tensors, base / "model.safetensors", metadata={"format": "pt"})
    out = tmp_path / "out"
    fails(cli_runner, ["extrapolate", trl_run, "-o", out, "--method", "linear", "--ahead", "10", "--format", "merged",
                       "--base", base, "--dtype", "float16"],
          f"tensor model.embed_tokens.weight does not fit float16: its values reach 1e+06 ({base}). Write --dtype "
          "float32 or bfloat16.")
    assert not out.exists()
