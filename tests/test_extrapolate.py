"""Extrapolated outputs: exact adapters PEFT loads, merged weights transformers loads, provenance,
piping, atomic writes. Tolerances: weights 1e-5 absolute (float32 outputs), logits 1e-4."""

import json

import pytest
import torch
from helpers import load_lora_delta, make_full_run, make_lora_run, raises_whole
from safetensors.torch import load_file

from nextx import load_run
from nextx.cli.main import cli
from nextx.extrapolation import extrapolate
from nextx.fitting import fit

IDS = torch.tensor([[1, 5, 9, 13, 2, 7]])


def _peft_logits(base_model, adapter_dir, trainable=False):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_model), adapter_dir,
                                      is_trainable=trainable)
    with torch.no_grad():
        return model(IDS).logits, model


def _merged_logits(path):
    from transformers import AutoModelForCausalLM

    with torch.no_grad():
        return AutoModelForCausalLM.from_pretrained(path)(IDS).logits


def test_coef_zero_reproduces_the_last_checkpoint(cli_runner, trl_run, base_model, tmp_path):
    out = tmp_path / "out"
    result = cli_runner.invoke(cli, ["extrapolate", str(trl_run), "-o", str(out), "--coef", "0", "--horizon", "2"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    for name in ("model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj"):
        expected = load_lora_delta(trl_run / "checkpoint-80", name)
        assert torch.allclose(load_lora_delta(out, name), expected, atol=1e-6)
    got, _ = _peft_logits(base_model, out)
    want, _ = _peft_logits(base_model, trl_run / "checkpoint-80")
    assert torch.allclose(got, want, atol=1e-5)


@pytest.fixture(scope="module")
def next_both(tmp_path_factory, trl_run, base_model):
    """NExt (short fit) at α = 1.5, written as adapter and merged weights."""
    run = load_run(trl_run, base=base_model)
    predictor = fit(run, "next", horizon=2, epochs=300, lr=3e-4)
    out = tmp_path_factory.mktemp("both") / "out"
    extrapolate(run, predictor, coef=1.5).save(out, fmt="both")
    return out


def test_adapter_is_rank_r_plus_one_and_agrees_with_merged(next_both, base_model):
    adapter, merged = next_both / "adapter", next_both / "merged"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 5 and config["lora_alpha"] == pytest.approx(10.0)  # scaling s = 2 kept
    base = load_file(base_model / "model.safetensors")
    weights = load_file(merged / "model.safetensors")
    for name in ("model.layers.0.self_attn.k_proj", "model.layers.1.mlp.gate_proj"):
        expected = base[f"{name}.weight"].double() + load_lora_delta(adapter, name)
        assert torch.allclose(weights[f"{name}.weight"].double(), expected, atol=1e-5)
    for key in ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", "model.layers.0.input_layernorm.weight"):
        assert torch.equal(weights[key], base[key])  # untouched tensors stay exactly as they are
    got, model = _peft_logits(base_model, adapter, trainable=True)
    assert torch.allclose(got, _merged_logits(merged), atol=1e-4)
    assert any(p.requires_grad for p in model.parameters())
    assert (merged / "config.json").exists() and json.loads((merged / "nextx.json").read_text())["coef"] == 1.5


def test_next_update_is_the_predicted_rank_one_term(next_both, trl_run):
    """s'·B'A' − s·B_T·A_T is rank one with σ = α·σ̂ ≥ 0."""
    name = "model.layers.0.mlp.up_proj"
    delta = load_lora_delta(next_both / "adapter", name) - load_lora_delta(trl_run / "checkpoint-80", name)
    S = torch.linalg.svdvals(delta)
    assert S[0] > 0 and S[1] < 1e-5 * S[0]


def test_provenance_and_model_card(next_both):
    record = json.loads((next_both / "adapter" / "nextx.json").read_text())
    assert record["method"] == "next" and record["coef"] == 1.5 and record["steps"][-1] == 80
    assert record["horizon"] == 2 and record["target_step"] == pytest.approx(80 + 1.5 * 20)
    assert "Extrapolated with nextx" in (next_both / "adapter" / "README.md").read_text()


@pytest.mark.parametrize("method", ["linear", "relex"])
def test_exact_adapters_for_peer_methods(trl_run, base_model, tmp_path, method):
    run = load_run(trl_run)
    out = extrapolate(run, fit(run, method, horizon=2), coef=1.0).save_adapter(tmp_path / "out")
    name = "model.layers.1.self_attn.v_proj"
    deltas = {s: load_lora_delta(trl_run / f"checkpoint-{s}", name) for s in run.steps}
    if method == "linear":
        expected = deltas[80] + (deltas[80] - deltas[70])
    else:  # W0 + c(t*)·d1 from the dense window of global deltas
        X = torch.stack([deltas[s].flatten() for s in run.steps])
        _, S, Vh = torch.linalg.svd(X, full_matrices=False)
        direction = Vh[0] if float((X @ Vh[0]).sum()) > 0 else -Vh[0]
        coefs = X @ direction
        t = torch.tensor(run.steps, dtype=torch.float64)
        a, b = torch.linalg.lstsq(torch.stack([t, torch.ones_like(t)], 1), coefs.unsqueeze(1)).solution.squeeze(1)
        expected = ((a * (80 + 20) + b) * direction).reshape(deltas[80].shape)  # H = horizon_steps = 20
    assert torch.allclose(load_lora_delta(out, name), expected, atol=1e-5)


def test_rank_recompression_reports_its_error(trl_run, tmp_path):
    run = load_run(trl_run)
    out = extrapolate(run, fit(run, "linear"), coef=2.0).save_adapter(tmp_path / "out", rank=3)
    record = json.loads((out / "nextx.json").read_text())
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 3
    name = "model.layers.0.self_attn.q_proj"
    d = {s: load_lora_delta(trl_run / f"checkpoint-{s}", name) for s in (70, 80)}
    full = d[80] + 2 * (d[80] - d[70])  # rank 8
    S = torch.linalg.svdvals(full)
    expected_error = float(S[3:].norm() / S.norm())
    assert float((load_lora_delta(out, name) - full).norm() / full.norm()) == pytest.approx(expected_error, rel=1e-4)
    assert record["max_rank_error"] >= expected_error - 1e-9


def test_patterns_and_rslora_survive_extrapolation(tmp_path, base_model):
    make_lora_run(tmp_path / "run", base_model, [10, 20, 30], use_rslora=True, rank_pattern={"q_proj": 2},
                  alpha_pattern={"down_proj": 3})
    run = load_run(tmp_path / "run")
    out = extrapolate(run, fit(run, "linear"), coef=1.0).save_adapter(tmp_path / "out")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["use_rslora"] and config["rank_pattern"]
    got, _ = _peft_logits(base_model, out)
    # the same Ŵ through PEFT's own merge of the two source checkpoints: W30 + (W30 − W20)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    def merged_state(step):
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_model), tmp_path / "run" / f"checkpoint-{step}")
        return model.merge_and_unload().state_dict()

    w30, w20 = merged_state(30), merged_state(20)
    target = AutoModelForCausalLM.from_pretrained(base_model)
    target.load_state_dict({k: w30[k] + (w30[k] - w20[k]) for k in w30})
    with torch.no_grad():
        assert torch.allclose(got, target(IDS).logits, atol=1e-4)


def test_full_weight_run_merged_output(tmp_path, base_model):
    make_full_run(tmp_path / "run", base_model, [10, 20, 30])
    run = load_run(tmp_path / "run", base=base_model)
    out = extrapolate(run, fit(run, "linear"), coef=1.0).save_merged(tmp_path / "out", shard_size="30KB")
    assert (out / "model.safetensors.index.json").exists()
    logits = _merged_logits(out)
    assert torch.isfinite(logits).all()
    from transformers import AutoModelForCausalLM

    weights = AutoModelForCausalLM.from_pretrained(out).state_dict()
    w = {s: load_file(tmp_path / "run" / f"checkpoint-{s}" / "model.safetensors") for s in (20, 30)}
    key = "model.layers.0.self_attn.q_proj.weight"
    assert torch.allclose(weights[key], w[30][key] + (w[30][key] - w[20][key]), atol=1e-5)
    norm = "model.layers.0.input_layernorm.weight"
    assert torch.equal(weights[norm], w[30][norm])  # 1-D tensors carried from W_T


def test_json_output_and_force(cli_runner, trl_run, tmp_path):
    out = tmp_path / "out"
    args = ["extrapolate", str(trl_run), "-o", str(out), "--method", "linear", "--to-step", "100", "--json"]
    result = cli_runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["adapter"] == str(out) and payload["coef"] == pytest.approx(2.0) and payload["method"] == "linear"
    again = cli_runner.invoke(cli, args)
    assert again.exit_code == 1 and "already exists" in again.stderr and "--force" in again.stderr
    assert cli_runner.invoke(cli, [*args, "--force"]).exit_code == 0


def test_ahead_auto_uses_the_backtest_and_reports_steps(cli_runner, trl_run, tmp_path):
    out = tmp_path / "out"
    result = cli_runner.invoke(cli, ["extrapolate", str(trl_run), "-o", str(out), "--method", "linear", "--ahead",
                                     "auto", "--json", "--holdout", "2", "--horizon", "2"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    scale = payload["backtest"]["methods"]["linear"]["coef_scale"]
    if payload["jump"]:  # the calibrated jump: coef_scale intervals of 10 steps
        assert payload["ahead_steps"] == pytest.approx(10 * min(max(scale, 0), 4)) and payload["ahead_steps"] >= 10
        assert json.loads((out / "nextx.json").read_text())["ahead_steps"] == pytest.approx(payload["ahead_steps"])
    else:  # shorter than one checkpoint interval: no useful jump, nothing written
        assert 10 * scale < 10 and not out.exists() and "no useful jump found" in payload["reason"]


def test_no_useful_jump_writes_nothing(cli_runner, trl_run, tmp_path, monkeypatch):
    """A calibrated jump shorter than one checkpoint interval: exit 0, "jump": false, nothing written."""
    import nextx.choose as choose
    from nextx.backtesting import BacktestReport

    scores = {"rel_error": 0.1, "error_vs_stay": 0.9, "gain_over_stay": 0.1, "cosine": 0.5, "coef_scale": 0.3}
    report = BacktestReport([10, 20], [30], 2, {"linear": scores}, "linear")
    monkeypatch.setattr(choose, "backtest", lambda *a, **k: report)
    out = tmp_path / "out"
    result = cli_runner.invoke(cli, ["extrapolate", str(trl_run), "-o", str(out), "--method", "linear", "--ahead",
                                     "auto", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["jump"] is False and payload["output"] is None and not out.exists()
    assert payload["reason"] == ("no useful jump found: the calibrated linear jump is 3.0 steps ahead, less than one "
                                 "checkpoint interval (10 steps)")
    result = cli_runner.invoke(cli, ["extrapolate", str(trl_run), "-o", str(out), "--method", "linear", "--ahead", "auto"])
    assert result.exit_code == 0 and result.stdout == "" and "no useful jump found" in result.stderr


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failed_writes_leave_nothing(trl_run, tmp_path, monkeypatch, exc):
    import nextx.extrapolation as module

    def broken(*args, **kwargs):
        raise exc

    monkeypatch.setattr(module, "save_file", broken)
    run = load_run(trl_run)
    with pytest.raises(type(exc)) as caught:
        extrapolate(run, fit(run, "linear"), coef=1.0).save_adapter(tmp_path / "out")
    assert caught.value is exc and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc", [RuntimeError("out of memory"), KeyboardInterrupt()])
def test_failed_merged_writes_leave_nothing(trl_run, base_model, tmp_path, monkeypatch, exc):
    """An error or Ctrl-C after some tensors went to the writer thread: no output, no temp dir."""
    import nextx.extrapolation as module
    real, calls = module.dense_of, []

    def fails_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "dense_of", fails_on_third)
    run = load_run(trl_run, base=base_model)
    out_dir = tmp_path / "outs"
    out_dir.mkdir()
    with pytest.raises(type(exc)) as caught:
        extrapolate(run, fit(run, "linear"), coef=1.0).save_merged(out_dir / "merged", shard_size="20KB")
    assert caught.value is exc and list(out_dir.iterdir()) == []


def test_known_trajectories_give_the_same_output(trl_run, tmp_path):
    """extrapolate(..., traj=) reuses fit's trajectories (NExt reads only W_T then) — same bytes."""
    from nextx import trajectories
    from nextx.errors import PredictorError

    run = load_run(trl_run)
    traj = trajectories(run, horizon=2)
    predictor = fit(run, "next", horizon=2, traj=traj, epochs=20, lr=3e-4)
    fresh = extrapolate(run, predictor, coef=1.5).save_adapter(tmp_path / "fresh")
    reused = extrapolate(run, predictor, coef=1.5, traj=traj).save_adapter(tmp_path / "reused")
    a, b = load_file(fresh / "adapter_model.safetensors"), load_file(reused / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with raises_whole(PredictorError, "the trajectories given are of steps [10, 20, 30], the run has "
                                    "[10, 20, 30, 40, 50, 60, 70, 80]. Compute them on this run: nextx.trajectories(run)."):
        extrapolate(run, predictor, coef=1.5, traj=traj.prefix(3))


def test_saved_predictor_reads_from_its_last_step_with_the_same_result(trl_run, tmp_path):
    """A saved NExt predictor keeps the canonical global u at its last step: extrapolating the same
    run starts its triplets there (reads W_{T−1} and W_T only) and writes what a full chain writes."""
    from nextx.fitting import load_predictor, save_predictor

    run = load_run(trl_run)
    predictor = load_predictor(save_predictor(fit(run, "next", horizon=2, epochs=20, lr=3e-4), tmp_path / "p"))
    assert predictor.sign_reference("model.layers.0.self_attn.q_proj", run.steps)[0] == len(run.steps) - 1
    short = extrapolate(run, predictor, coef=1.5).save_adapter(tmp_path / "short")
    predictor.reference_u = {}  # no kept signs: the whole chain from the first checkpoint
    chained = extrapolate(run, predictor, coef=1.5).save_adapter(tmp_path / "chained")
    a, b = load_file(short / "adapter_model.safetensors"), load_file(chained / "adapter_model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.mark.parametrize("cap", [0.5, 1.0, 100.0])
def test_capped_jumps_respect_the_trust_region(trl_run, cap):
    """Per module ‖Ŵ − W_T‖ ≤ cap·‖W_T − W_{T−1}‖, same direction; a loose cap changes nothing."""
    from nextx.lowrank import FactoredUpdate, update_inner

    run = load_run(trl_run)
    predictor = fit(run, "linear")
    free = extrapolate(run, predictor, ahead=30)  # 3 intervals of the last velocity: norm ratio 3
    capped = extrapolate(run, predictor, ahead=30, cap=cap)
    last = len(run.steps) - 1
    for name in list(run.modules)[:4]:
        stack, update = capped.module_update(name)
        _, update_free = free.module_update(name)
        change = update - FactoredUpdate({last: 1.0})
        change_free = update_free - FactoredUpdate({last: 1.0})
        interval = FactoredUpdate({last: 1.0, last - 1: -1.0})
        norm = update_inner(stack, change, change) ** 0.5
        limit = update_inner(stack, interval, interval) ** 0.5
        assert norm == pytest.approx(min(cap, 3.0) * limit, rel=1e-6)
        cosine = update_inner(stack, change, change_free) / (norm * update_inner(stack, change_free, change_free) ** 0.5)
        assert cosine == pytest.approx(1.0, abs=1e-9)


def test_embedding_lora_and_modules_to_save_round_trip(tmp_path, base_model, cli_runner):
    """A run with an Embedding LoRA (lora_embedding_A/B) and modules_to_save (lm_head): the adapter
    nextx writes loads in PEFT with the checkpoint's logits, and merged weights equal PEFT's
    merge_and_unload, embedding update and lm_head included (1e-5)."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_model), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "embed_tokens"], modules_to_save=["lm_head"], lora_dropout=0.0))
    generator = torch.Generator().manual_seed(0)
    for step in (10, 20, 30):
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_" in name or "modules_to_save" in name:
                    param.add_(0.05 * torch.randn(param.shape, generator=generator))
        model.save_pretrained(tmp_path / "run" / f"checkpoint-{step}")
    saved = load_file(tmp_path / "run" / "checkpoint-30" / "adapter_model.safetensors")
    assert any("lora_embedding_A" in k for k in saved) and any("lm_head" in k for k in saved)
    run = load_run(tmp_path / "run")
    assert run.modules["model.embed_tokens"].embedding and run.modules["model.embed_tokens"].transposed
    for fmt in ("adapter", "merged"):
        result = cli_runner.invoke(cli, ["extrapolate", str(tmp_path / "run"), "-o", str(tmp_path / fmt), "--method",
                                         "stay", "--ahead", "0", "--format", fmt, "--base", str(base_model)])
        assert result.exit_code == 0, result.output
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_model),
                                          tmp_path / "run" / "checkpoint-30")
    ours = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_model), tmp_path / "adapter")
    ids = torch.tensor([[1, 5, 9, 2, 7]])
    assert torch.allclose(ours(ids).logits, reference(ids).logits, atol=1e-5)
    expected = reference.merge_and_unload().state_dict()
    merged = load_file(tmp_path / "merged" / "model.safetensors")
    for key in ("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "lm_head.weight"):
        assert torch.allclose(merged[key], expected[key], atol=1e-5), key
    assert not torch.allclose(merged["model.embed_tokens.weight"],
                              load_file(base_model / "model.safetensors")["model.embed_tokens.weight"])
