"""The reference GRPO trainer, NExt in the loop, eval, and the tiny model — real TRL, tiny sizes."""

import json

import pytest
import torch
from helpers import load_lora_delta

from nextx import load_run
from nextx.cli.main import cli

pytest.importorskip("trl")

from nextx.train.callback import NExtCallback, reset_adam_moments  # noqa: E402
from nextx.train.config import GRPORunConfig  # noqa: E402
from nextx.train.evaluate import evaluate  # noqa: E402
from nextx.train.grpo import train  # noqa: E402
from nextx.train.tasks import TASKS, get_task  # noqa: E402
from nextx.train.tiny_model import TinyRecipe, build_model  # noqa: E402
from nextx.train.tokenizer import char_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def raw_tiny(tmp_path_factory):
    """An untrained tiny Llama + char tokenizer saved to disk (no SFT: fast)."""
    task = get_task("addition")
    tokenizer = char_tokenizer(task.alphabet)
    recipe = TinyRecipe(hidden_size=32, intermediate_size=64, layers=1, heads=2)
    model = build_model(recipe, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    path = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def warm_tiny(nextx_cache):
    """The embedded default: SFT-warmed tiny model (built once per session, ~30 s), so GRPO has signal."""
    from nextx.train.tiny_model import tiny_model_path

    return tiny_model_path("addition")


def _config(out, model, **kwargs):
    defaults = dict(output_dir=str(out), model=str(model), task="addition", steps=4, save_every=1,
                    prompts_per_step=4, num_generations=4, lora_r=4, lora_alpha=8)
    return GRPORunConfig(**{**defaults, **kwargs})


def test_tokenizer_and_model_round_trip(raw_tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(raw_tiny)
    ids = tokenizer("47+38=")["input_ids"]
    assert len(ids) == 6 and tokenizer.decode(ids) == "47+38="
    assert tokenizer.decode(ids + [tokenizer.eos_token_id], skip_special_tokens=True) == "47+38="
    model = AutoModelForCausalLM.from_pretrained(raw_tiny)
    assert model.config.model_type == "llama" and sum(p.numel() for p in model.parameters()) < 1_000_000


def test_tasks_have_fixed_disjoint_splits():
    for name in TASKS:
        task = get_task(name)
        held = task.eval_split()
        assert len(held) == 500 and len({e.prompt for e in held}) == 500
        assert held == task.eval_split()
        train_prompts = {e.prompt for e in task.train_examples(2000, seed=3)}
        assert not train_prompts & {e.prompt for e in held}
        example = held[0]
        assert eval(example.prompt.rstrip("=")) == int(example.answer)  # the answer is right


def test_eval_accuracy_on_known_answers(raw_tiny, monkeypatch):
    import nextx.train.evaluate as module

    task = get_task("addition")
    examples = task.eval_split()[:4]
    replies = [examples[0].answer, " " + examples[1].answer + " ", "0" + examples[2].answer, "nope"]
    monkeypatch.setattr(module, "greedy_completions", lambda *a, **k: replies)
    assert evaluate(None, None, task, examples).accuracy == pytest.approx(0.5)


def test_few_step_train_writes_a_run_nextx_reads(tmp_path, raw_tiny, cli_runner):
    out = train(_config(tmp_path / "run", raw_tiny), log=lambda m: None)
    run = load_run(out)
    assert run.layout == "trl" and run.steps == [1, 2, 3, 4] and len(run.modules) == 7
    result = cli_runner.invoke(cli, ["inspect", str(out), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["lora_rank"] == 4
    record = json.loads((out / "nextx-train.json").read_text())
    assert record["config"]["steps"] == 4


def test_init_adapter_resumes_from_an_extrapolated_adapter(tmp_path, warm_tiny, cli_runner):
    run_dir = train(_config(tmp_path / "run", warm_tiny), log=lambda m: None)
    jump = tmp_path / "jump"
    result = cli_runner.invoke(cli, ["extrapolate", str(run_dir), "-o", str(jump), "--method", "linear", "--coef", "1"])
    assert result.exit_code == 0, result.output
    frozen = train(_config(tmp_path / "frozen", warm_tiny, init_adapter=str(jump), steps=1, learning_rate=0.0),
                   log=lambda m: None)
    resumed = train(_config(tmp_path / "resumed", warm_tiny, init_adapter=str(jump), steps=2), log=lambda m: None)
    name = "model.layers.0.self_attn.q_proj"
    assert json.loads((resumed / "checkpoint-2" / "adapter_config.json").read_text())["r"] == 8  # rank 2r kept
    start = load_lora_delta(jump, name)
    assert torch.allclose(load_lora_delta(frozen / "checkpoint-1", name), start, atol=1e-7)  # starts at the jump
    assert not torch.allclose(load_lora_delta(resumed / "checkpoint-2", name), start)  # and trains from there


def test_callback_swaps_the_live_weights(tmp_path, warm_tiny):
    seen = {}

    class Probe(NExtCallback):
        """Records the live adapter right after the jump at step 3."""

        def __init__(self):
            super().__init__(at=3)

        def on_save(self, args, state, control, model=None, **kwargs):
            if state.global_step == 3:
                seen["live"] = {n: (m.lora_B["default"].weight.detach().double() @ m.lora_A["default"].weight.detach().double()
                                    * m.scaling["default"]).clone()
                                for n, m in model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A}
            return control

    jumper = NExtCallback(at=3, method="linear", coef=1.0, horizon=1)
    out = train(_config(tmp_path / "run", warm_tiny, steps=3), callbacks=[jumper, Probe()], log=lambda m: None)
    assert [j["step"] for j in jumper.jumps] == [3] and jumper.jumps[0]["method"] == "linear"
    name = "model.layers.0.mlp.down_proj"
    w2, w3 = (load_lora_delta(out / f"checkpoint-{s}", name) for s in (2, 3))
    assert float((w3 - w2).norm()) > 0  # GRPO moved the weights, so the jump is not trivial
    expected = w3 + (w3 - w2)  # linear, α = 1, rank ≤ 8 → best rank-4 approximation in the live adapter
    U, S, Vh = torch.linalg.svd(expected)
    best = (U[:, :4] * S[:4]) @ Vh[:4]
    live = seen["live"][f"base_model.model.{name}"]
    assert torch.allclose(live, best, atol=1e-5 * float(S[0]))
    assert jumper.jumps[0]["max_rank_error"] >= float(S[4:].norm() / S.norm()) - 1e-6


def test_reset_adam_moments_clears_the_wrapped_state():
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([param], lr=0.1)
    param.grad = torch.ones(3)
    optimizer.step()
    assert optimizer.state

    class Wrapped:  # accelerate's AcceleratedOptimizer exposes the torch one as .optimizer
        def __init__(self, inner):
            self.optimizer = inner

    reset_adam_moments(Wrapped(optimizer))
    assert not optimizer.state


def test_config_rejects_bad_combinations():
    from nextx.errors import NextxError

    with pytest.raises(NextxError, match="not a multiple of --save-every"):
        GRPORunConfig(output_dir="x", next_at=15, save_every=10)
    with pytest.raises(NextxError, match="needs 4"):
        GRPORunConfig(output_dir="x", next_at=20, save_every=10, next_horizon=3)


def test_quick_demo_writes_an_honest_report(tmp_path, warm_tiny, cli_runner):
    """The demo end to end at a tiny budget: report fields, plot, and steps_saved_pct consistent
    with the curves (whatever its sign)."""
    from nextx.train.demo import DemoConfig, first_reaching, run_demo

    config = DemoConfig(steps=40, save_every=10, next_at=30, next_horizon=2, next_lr=3e-4)
    report = run_demo(tmp_path / "demo", config, log=lambda m: None)
    assert (tmp_path / "demo" / "accuracy.png").exists()
    saved = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert saved["steps_saved_pct"] == report["steps_saved_pct"]
    vanilla, nexted = saved["accuracy"]["vanilla"], saved["accuracy"]["next"]
    assert set(vanilla) == set(nexted) == {"0", "10", "20", "30", "40"}
    assert vanilla["30"] == nexted["30"]  # identical until the jump (same seed, same data)
    target = vanilla["40"]
    reach = {k: first_reaching({int(s): a for s, a in c.items()}, target) for k, c in (("v", vanilla), ("n", nexted))}
    assert saved["steps_to_target"] == {"vanilla": reach["v"], "next": reach["n"]}
    assert [j["step"] for j in saved["jumps"]] == [30]


def test_train_and_eval_commands(tmp_path, warm_tiny, cli_runner):
    out = tmp_path / "run"
    result = cli_runner.invoke(cli, ["train", "-o", str(out), "--model", str(warm_tiny), "--steps", "2", "--save-every", "1",
                                     "--prompts-per-step", "4", "--num-generations", "4"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out) and (out / "checkpoint-2" / "adapter_model.safetensors").exists()
    result = cli_runner.invoke(cli, ["eval", str(out / "checkpoint-2"), "--base", str(warm_tiny), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n"] == 500 and 0.1 < payload["accuracy"] < 0.9  # the warmed-up model, a little GRPO later
    from nextx.train.runs import evaluate_path

    assert evaluate_path(warm_tiny, get_task("addition")).accuracy == pytest.approx(
        json.loads(cli_runner.invoke(cli, ["eval", str(warm_tiny), "--json"]).stdout)["accuracy"])


@pytest.mark.slow
def test_full_default_demo_command(tmp_path, nextx_cache, cli_runner):
    """`nextx demo` exactly as the README runs it (several minutes on 2 cores)."""
    result = cli_runner.invoke(cli, ["demo", "-o", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert "steps_saved_pct" in report and (tmp_path / "demo" / "accuracy.png").exists()
    assert report["accuracy"]["vanilla"]["400"] - report["accuracy"]["vanilla"]["0"] >= 0.15  # a real RLVR curve
