"""The reference GRPO trainer, NExt in the loop, eval, and the tiny model — real TRL, tiny sizes."""

import json
import re

import pytest
import torch
from helpers import load_lora_delta, raises_whole

from nextx import load_run
from nextx.cli.main import cli

pytest.importorskip("trl")

from transformers import TrainerCallback  # noqa: E402

from nextx.jump.live import reset_adam_moments  # noqa: E402
from nextx.train.callback import NExtCallback  # noqa: E402
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
        held, validation = task.eval_split(), task.validation_split()
        assert len(held) == len({e.prompt for e in held}) == task.eval_size
        assert held == task.eval_split() and not {e.prompt for e in held} & {e.prompt for e in validation}
        train_prompts = {e.prompt for e in task.train_examples(2000, seed=3)}
        assert not train_prompts & {e.prompt for e in (*held, *validation)}
        example = held[0]
        question = re.search(r"(\d+ ?[-+] ?\d+(?: ?[-+] ?\d+)?)(?:=|\?)", example.prompt)[1]
        assert eval(question) == int(example.answer)  # the answer is right
        assert task.score(f" {example.answer}\n", example.answer) == 1.0 and task.score("x", example.answer) == 0.0
    chat = get_task("chat-arith")
    assert chat.score("The answer is 12.", "12") == 1.0 and chat.score("-3", "3") == 0.0 and chat.score("123", "12") == 0.0
    assert len(chat.population()) == 882 and len(chat.test_population()) == 682


def test_eval_accuracy_on_known_answers(raw_tiny, monkeypatch):
    import nextx.train.evaluate as module

    task = get_task("addition")
    examples = task.eval_split()[:4]
    replies = [examples[0].answer, " " + examples[1].answer + " ", "0" + examples[2].answer, "nope"]
    monkeypatch.setattr(module, "greedy_completions", lambda *a, **k: replies)
    assert evaluate(None, None, task, examples).accuracy == pytest.approx(0.5)


def test_few_step_train_writes_a_run_nextx_reads(tmp_path, raw_tiny, cli_runner):
    out = train(_config(tmp_path / "run", raw_tiny), log=lambda m: None).path
    run = load_run(out)
    assert run.layout == "trl" and run.steps == [1, 2, 3, 4] and len(run.modules) == 7
    result = cli_runner.invoke(cli, ["inspect", str(out), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["lora_rank"] == 4
    record = json.loads((out / "nextx-train.json").read_text())
    assert record["config"]["steps"] == 4


def test_init_adapter_resumes_from_an_extrapolated_adapter(tmp_path, warm_tiny, cli_runner):
    run_dir = train(_config(tmp_path / "run", warm_tiny), log=lambda m: None).path
    jump = tmp_path / "jump"
    result = cli_runner.invoke(cli, ["extrapolate", str(run_dir), "-o", str(jump), "--method", "linear", "--coef", "1"])
    assert result.exit_code == 0, result.output
    frozen = train(_config(tmp_path / "frozen", warm_tiny, init_adapter=str(jump), steps=1, learning_rate=0.0),
                   log=lambda m: None).path
    resumed = train(_config(tmp_path / "resumed", warm_tiny, init_adapter=str(jump), steps=2), log=lambda m: None).path
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

    jumper = NExtCallback(at=3, method="linear", ahead=1, horizon=1, apply="refactor")  # one interval: α = 1
    out = train(_config(tmp_path / "run", warm_tiny, steps=4), callbacks=[jumper, Probe()], log=lambda m: None).path
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

    with raises_whole(NextxError, "--next-at 15 is not a multiple of --save-every 10. "
                                  "NExt jumps right after a checkpoint is saved."):
        GRPORunConfig(output_dir="x", next_at=15, save_every=10)
    with raises_whole(NextxError, "--next-at 20 leaves 2 checkpoints, NExt with horizon 3 needs 4. "
                                  "Jump later, save more often, or lower the horizon."):
        GRPORunConfig(output_dir="x", next_at=20, save_every=10, next_method="next", next_horizon=3)
    with raises_whole(NextxError, "--next-ahead 'far' is neither a number of steps nor 'auto'."):
        GRPORunConfig(output_dir="x", next_at=40, save_every=10, next_ahead="far")
    with raises_whole(NextxError, "--next-select reward needs a built-in --task (its verifier scores the candidates). "
                                  "Use --next-select weights, or NExtCallback(select='reward', scorer=...) in Python."):
        GRPORunConfig(output_dir="x", task=None, dataset="d.jsonl", next_at=40, save_every=10, next_select="reward")
    with raises_whole(NextxError, "--steps 10 is less than --save-every 20: the run would save no checkpoint. "
                                  "Use --save-every 10 or less."):
        GRPORunConfig(output_dir="x", steps=10, save_every=20)
    with raises_whole(NextxError, "--dataset needs --model: the embedded tiny model knows only the built-in tasks. "
                                  "Pass --model PATH or a Hub id (OWNER/NAME)."):
        GRPORunConfig(output_dir="x", algo="dgo", task=None, dataset="d.jsonl")
    assert GRPORunConfig(output_dir="x", algo="dgo", task=None, dataset="d.jsonl", model="org/model").dataset
    with raises_whole(NextxError, "unknown --dgo-ablate 'rephrase'. Choose one of: none, annealing, renewal, rephrasing, "
                                  "distillation, rft."):
        GRPORunConfig(output_dir="x", algo="dgo", dgo_ablate="rephrase")
    with raises_whole(NextxError, "unknown --algo 'dgoo'. Choose one of: grpo, dgo."):  # every knob's choices
        GRPORunConfig(output_dir="x", algo="dgoo")
    with raises_whole(NextxError, "the rule-based experience generator knows the addition task, not 'chain'. Use "
                                  "--task addition, or --dgo-generator MODEL (a causal LM that writes experiences)."):
        GRPORunConfig(output_dir="x", algo="dgo", task="chain")
    for schedule in ("1,x", "1.5", ","):
        with raises_whole(NextxError, f"--dgo-schedule {schedule!r} is not a comma-separated list of shares in "
                                      "[0, 1]. The paper's: --dgo-schedule 1.0,0.5,0.25"):
            GRPORunConfig(output_dir="x", algo="dgo", dgo_schedule=schedule)
    assert GRPORunConfig(output_dir="x", algo="dgo", dgo_schedule="1, 0.3").schedule() == (1.0, 0.3)
    assert GRPORunConfig(output_dir="x", algo="dgo").clip_high() == 0.28 and GRPORunConfig(output_dir="x").clip_high() is None


def test_quick_demo_writes_an_honest_report(tmp_path, warm_tiny):
    """The demo end to end at a tiny budget (1 seed, a linear jump): paired runs identical up to the
    jump, exact population accuracy, the measure's fields, the plot; one seed is called an anecdote."""
    from nextx.studies.demo import DemoConfig, run_demo
    from nextx.studies.measure import seed_savings

    config = DemoConfig(steps=30, save_every=10, next_at=20, next_ahead=10, next_horizon=1, seeds=(0,), arms=("linear",))
    report = run_demo(tmp_path / "demo", config, log=lambda m: None)
    assert (tmp_path / "demo" / "accuracy.png").exists()
    saved = json.loads((tmp_path / "demo" / "report.json").read_text())
    vanilla, jumped = saved["accuracy"]["0"]["vanilla"], saved["accuracy"]["0"]["linear"]
    assert set(vanilla) == set(jumped) == {"0", "10", "20", "30"}
    assert vanilla["20"] == jumped["20"]  # identical until the jump (same seed, same data), scored in both
    assert saved["evaluation"]["exact"] and saved["evaluation"]["prompts"] == 9500
    expected = seed_savings({int(k): v for k, v in vanilla.items()}, {int(k): v for k, v in jumped.items()}, 20)
    arm = saved["arms"]["linear"]
    assert arm["steps_saved"] == pytest.approx(expected.steps_saved) and arm["steps_saved_ci95"] == [None, None]
    assert arm["identical_before_jump"] and arm["jumped"] == 1 and arm["wall_seconds"] > 0
    assert "an anecdote" in saved["headline"] and report["headline"] == saved["headline"]
    assert [j["step"] for j in saved["jumps"]["0"]["linear"]] == [20]


def test_demo_report_over_seeds_states_the_interval():
    """build_report on known curves: per-arm steps saved with a t-interval over 5 seeds, in the headline."""
    from nextx.studies.demo import DemoConfig, build_report

    config = DemoConfig(steps=100, save_every=25, next_at=50, seeds=tuple(range(5)), arms=("next",))
    steps = [0, 25, 50, 75, 100]
    curves = {str(seed): {"vanilla": {s: 0.3 + 0.001 * s for s in steps},
                          "next": {s: 0.3 + 0.001 * (s + (10 + seed if s > 50 else 0)) for s in steps}}
              for seed in range(5)}
    seconds = {s: {"vanilla": 60.0, "next": 70.0} for s in curves}
    jumps = {s: {"vanilla": [], "next": [{"step": 50, "jumped": True}]} for s in curves}
    clocks = {s: {"vanilla": {25: 15.0, 50: 30.0, 75: 45.0, 100: 60.0},
                  "next": {25: 15.0, 50: 40.0, 75: 55.0, 100: 70.0}} for s in curves}  # the jump at 50 took 10 s
    report = build_report(config, curves, seconds, jumps, clocks)
    arm = report["arms"]["next"]
    # to vanilla's final accuracy 0.4 (step 100, 60 s): the arm's fit crosses it at 75 + (0.015 − 0.001·seed)/0.025·25
    reached = [90 - seed for seed in range(5)]
    target = arm["summary"]["to_target"]
    assert target["steps_fewer_pct"]["mean"] == pytest.approx(sum(100 - r for r in reached) / 5)
    wall = [100 * (60 - (55 + (r - 75) / 25 * 15)) / 60 for r in reached]
    assert target["wall_less_pct"]["mean"] == pytest.approx(sum(wall) / 5) and target["not_reached"] == 0
    assert arm["per_seed"]["0"]["to_target"]["steps"] == pytest.approx(90)
    # step 100's jumped accuracy (0.41 + …) is above vanilla's best: censored at 100, so only step 75 counts fully
    per_seed = [((75 + 10 + seed) - 75 + 0) / 2 for seed in range(5)]
    assert arm["steps_saved"] == pytest.approx(sum(per_seed) / 5)
    low, high = arm["steps_saved_ci95"]
    assert low < arm["steps_saved"] < high and arm["summary"]["censored_above"] == 5
    assert report["headline"].startswith("next: saves steps — steps saved +6 (95% CI")
    assert report["wall_seconds"] == {"vanilla": 60.0, "next": 70.0}


def test_demo_refuses_steps_before_the_jump(cli_runner, tmp_path):
    result = cli_runner.invoke(cli, ["demo", "-o", str(tmp_path / "d"), "--steps", "150"])
    assert result.exit_code == 2 and not (tmp_path / "d").exists()
    assert "Error: Invalid value for --steps: 150 leaves no step after the jump at step 150 (use 250 or more)" in result.stderr


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
    again = cli_runner.invoke(cli, ["train", "-o", str(out), "--model", str(warm_tiny), "--steps", "1", "--save-every", "1",
                                    "--prompts-per-step", "4", "--num-generations", "4", "--force", "--json"])
    assert again.exit_code == 0, again.output
    record = json.loads(again.stdout)
    assert record["output"] == str(out) and record["config"]["steps"] == 1 and record["jumps"] == []
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]  # --force replaced the old run


def test_next_epochs_reach_the_jump_and_bad_ones_are_refused(tmp_path, warm_tiny, cli_runner):
    from nextx.errors import NextxError

    out = tmp_path / "run"
    result = cli_runner.invoke(cli, ["train", "-o", str(out), "--model", str(warm_tiny), "--steps", "3", "--save-every", "1",
                                     "--prompts-per-step", "4", "--num-generations", "4", "--next-at", "2", "--horizon",
                                     "1", "--method", "next", "--next-epochs", "3", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["config"]["next_epochs"] == 3
    assert [(j["step"], j["method"], j["epochs_run"]) for j in record["jumps"]] == [(2, "next", 3)]
    with raises_whole(NextxError, "--next-epochs 0 is neither a positive number of epochs nor 'auto'."):
        GRPORunConfig(output_dir="x", next_epochs=0)


@pytest.mark.slow
def test_full_default_demo_command(tmp_path, nextx_cache, cli_runner):
    """`nextx demo` exactly as the README runs it (several minutes on 2 cores)."""
    result = cli_runner.invoke(cli, ["demo", "-o", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["seeds"] == [0, 1, 2, 3] and (tmp_path / "demo" / "accuracy.png").exists()
    assert len(report["steps_saved_ci95"]) == 2 and "95% CI" in report["headline"]
    for seed in map(str, range(4)):  # a real RLVR curve: exact accuracy rises through the run
        vanilla = report["accuracy"][seed]["vanilla"]
        assert vanilla["400"] - vanilla["0"] >= 0.05


@pytest.mark.parametrize("experiences", [False, True])
def test_the_packaged_tiny_models_match_their_recipes(nextx_cache, experiences):
    """The shipped models are the current recipes' (else every demo and test session rebuilds them)."""
    from nextx.train.tiny_model import ASSETS, tiny_model_path

    path = tiny_model_path("addition", experiences=experiences)
    assert path.parent == ASSETS and not list(nextx_cache.iterdir())  # nothing built
    recorded = json.loads((path / "nextx-recipe.json").read_text())
    expected = TinyRecipe.shipped("addition", experiences).recorded()
    assert {k: recorded.get(k) for k in expected} == expected
    assert ("experiences" in recorded) == experiences  # the plain recipe's hash, and file, are unchanged


def _effective(model) -> dict[str, torch.Tensor]:
    """base weight + scaling·B·A of every LoRA layer of a live PEFT model (float64)."""
    return {n.removeprefix("base_model.model."): (m.base_layer.weight.double() + m.scaling["default"]
                                                  * m.lora_B["default"].weight.double() @ m.lora_A["default"].weight.double())
            for n, m in model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A}


class _Snapshot(TrainerCallback):
    """Records, at every save, the live effective weights and the optimizer's state size."""

    def __init__(self, into):
        self.into = into

    def on_save(self, args, state, control, model=None, optimizer=None, **kwargs):
        inner = getattr(optimizer, "optimizer", optimizer)
        self.into[state.global_step] = ({k: v.clone() for k, v in _effective(model).items()}, len(inner.state))


def test_offset_jumps_are_exact_keep_adam_and_survive_save_read_second_jump(tmp_path, warm_tiny, cli_runner):
    """apply="offset": Ŵ − W_T folded into the frozen base; LoRA factors and Adam's moments untouched;
    later checkpoints carry the offset, the reader applies it, a second jump builds on the true
    weights, and `extrapolate --method stay` exports them as a plain PEFT adapter (tolerance 1e-6)."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from nextx.lowrank import FactoredUpdate, dense_of

    before, after = {}, {}
    jumper = NExtCallback(at=2, every=1, method="linear", ahead=1, horizon=1, apply="offset")
    out = train(_config(tmp_path / "run", warm_tiny), callbacks=[_Snapshot(before), jumper, _Snapshot(after)], log=lambda m: None).path
    assert [j["step"] for j in jumper.jumps] == [2, 3] and all(j["apply"] == "offset" for j in jumper.jumps)  # none at
    # the last step: nothing trains after it
    w0 = {k.removesuffix(".weight"): v.double() for k, v in load_file(warm_tiny / "model.safetensors").items()}
    run = load_run(out)
    assert [(out / f"checkpoint-{s}" / "nextx_base_offset.safetensors").exists() for s in (1, 2, 3, 4)] == \
        [False, False, True, True]
    for name in list(run.modules)[:3]:
        stack = run.deltas(name)
        true = {i: w0[name] + dense_of(stack, FactoredUpdate({i: 1.0})) for i in range(4)}  # the reader's weights
        for i, step in enumerate((1, 2, 3, 4)):  # every checkpoint = the live weights when it was saved
            assert torch.allclose(before[step][0][name], true[i], rtol=0, atol=1e-6)
        for i, step in ((1, 2), (2, 3)):  # jump = W_T + (W_T − W_{T−1}) exactly, from the true weights
            assert torch.allclose(after[step][0][name], 2 * true[i] - true[i - 1], rtol=0, atol=1e-6)
    assert all(before[s][1] > 0 and after[s][1] == before[s][1] for s in (2, 3))  # Adam's moments kept
    assert jumper.jumps[0]["max_rank_error"] == 0.0  # nothing truncated
    stay = tmp_path / "stay"
    result = cli_runner.invoke(cli, ["extrapolate", str(out), "-o", str(stay), "--method", "stay", "--ahead", "0"])
    assert result.exit_code == 0, result.output
    from peft import PeftModel

    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(warm_tiny), stay).merge_and_unload()
    name = "model.layers.0.mlp.down_proj"
    assert torch.allclose(dict(merged.named_modules())[name].weight.double(), before[4][0][name], atol=1e-6)
    from nextx.train.runs import evaluate_path

    task = get_task("addition")
    assert evaluate_path(out / "checkpoint-4", task, warm_tiny).accuracy == evaluate_path(stay, task, warm_tiny).accuracy


def test_merge_jumps_restart_lora_and_adam_exactly_and_damping_shortens_later_jumps(tmp_path, warm_tiny):
    """apply="merge": after the jump the live weights are Ŵ exactly (1e-6), the LoRA restarts (B = 0)
    with fresh Adam moments, and later checkpoints read back as the live weights (offset = merged
    LoRA + jump). damping 0.5: the second jump goes half as far (α = ½ for linear, one interval)."""
    from safetensors.torch import load_file

    from nextx.lowrank import FactoredUpdate, dense_of

    before, after = {}, {}
    jumper = NExtCallback(at=2, every=1, method="linear", ahead=1, horizon=1, apply="merge", damping=0.5)
    out = train(_config(tmp_path / "run", warm_tiny), callbacks=[_Snapshot(before), jumper, _Snapshot(after)],
                log=lambda m: None).path
    assert [round(j["coef"], 6) for j in jumper.jumps] == [1.0, 0.5]
    w0 = {k.removesuffix(".weight"): v.double() for k, v in load_file(warm_tiny / "model.safetensors").items()}
    run = load_run(out)
    for name in list(run.modules)[:3]:
        stack = run.deltas(name)
        true = {i: w0[name] + dense_of(stack, FactoredUpdate({i: 1.0})) for i in range(4)}
        for i, step in enumerate((1, 2, 3, 4)):
            assert torch.allclose(before[step][0][name], true[i], rtol=0, atol=1e-6)
        for i, step, coef in ((1, 2, 1.0), (2, 3, 0.5)):
            assert torch.allclose(after[step][0][name], true[i] + coef * (true[i] - true[i - 1]), rtol=0, atol=1e-6)
    assert all(before[s][1] > 0 and after[s][1] == 0 for s in (2, 3))  # Adam restarted at each jump
    with raises_whole(ValueError, "damping must be in (0, 1], not 0"):
        NExtCallback(at=2, damping=0)


def test_demo_config_is_the_grpo_settings_plus_seeds_and_arms(tmp_path):
    """Settings are declared once (GRPOSettings); the demo adds seeds and arms and derives each run."""
    from dataclasses import fields

    from nextx.studies.demo import DemoConfig
    from nextx.train.config import GRPOSettings

    assert {f.name for f in fields(GRPOSettings)} < {f.name for f in fields(DemoConfig)}
    config = DemoConfig(prompts_per_step=32, arms=("trend-every",))
    vanilla, arm = config.run_config(tmp_path / "v", 3), config.run_config(tmp_path / "a", 3, "trend-every")
    assert vanilla.next_at is None and vanilla.prompts_per_step == arm.prompts_per_step == 32
    assert vanilla.seed == arm.seed == 3 and vanilla.output_dir == str(tmp_path / "v")
    assert (arm.next_at, arm.next_every, arm.next_ahead, arm.next_cap, arm.next_damping, arm.next_method,
            arm.next_apply) == (150, 50, 25.0, 1.0, 0.875, "trend", "offset")
    assert config.run_config(tmp_path / "n", 0, "next-offset").next_ahead == 100.0


def test_the_in_loop_defaults_are_the_tuned_trend_fast_variant():
    """`nextx train --next-at T` alone: a trend jump at every checkpoint, one interval ahead, capped at the
    last interval's update, on the training's own path — the arm chosen on the tuning seeds."""
    from nextx.studies.arms import ARMS

    config = GRPORunConfig(output_dir="x", save_every=25, next_at=150)
    fast = ARMS["trend-fast"]
    assert (config.next_method, config.jump_every(), config.jump_ahead(), config.jump_cap(), config.next_damping,
            config.jump_velocity(), config.next_apply) == (
        fast["next_method"], fast["next_every"], fast["next_ahead"], fast["next_cap"], fast["next_damping"],
        fast["next_velocity"], fast["next_apply"])
    once = GRPORunConfig(output_dir="x", save_every=25, next_at=150, next_every=0, next_cap=0, next_apply="merge")
    assert (once.jump_every(), once.jump_cap(), once.jump_velocity()) == (None, None, "total")
    assert GRPORunConfig(output_dir="x", save_every=25, next_at=150, next_select="reward").jump_ahead() is None


def test_arm_variants_override_their_jump_settings_and_their_jump_step(tmp_path):
    from nextx.studies.arms import arm_settings
    from nextx.studies.demo import DemoConfig

    assert arm_settings("trend-every:every=25:ahead=50:cap=2.5:at=75") == {
        "next_method": "trend", "next_every": 25, "next_ahead": 50, "next_cap": 2.5, "next_damping": 0.875,
        "next_apply": "offset", "next_velocity": "total", "next_at": 75}
    config = DemoConfig(arms=("trend-every:at=75:every=25",))
    run = config.run_config(tmp_path / "a", 0, config.arms[0])
    assert (run.next_at, run.next_every, config.jump_step(config.arms[0]), config.jump_step("trend-every")) == (75, 25, 75, 150)
    with raises_whole(ValueError, "arm 'trend-every:every': 'every' is not KEY=VALUE"):
        arm_settings("trend-every:every")
    with raises_whole(ValueError, "unknown arm 'magic'"):
        arm_settings("magic:every=2")


def test_adaptive_and_verified_jumps_in_the_trl_loop_record_their_verdicts(tmp_path, warm_tiny):
    """--next-adaptive / --next-verify through TRL: ρ measured at the next checkpoint, each jump verified
    on the logged on-policy reward (accepted or rolled back), all in nextx-train.json and the jump log."""
    result = train(_config(tmp_path / "run", warm_tiny, steps=5, next_at=2, next_every=1, next_method="linear",
                           next_ahead=1, next_horizon=1, next_adaptive=True, next_verify=1), log=lambda m: None)
    first = result.jumps[0]
    assert [j["step"] for j in result.jumps] == [2, 3, 4]
    assert isinstance(first["realised_ratio"], float) and first["verified"] in ("accepted", "rolled back")
    assert first["verified_at"] == 3 and first["pace_scale"] in (0.25, 0.5, 0.75, 1.0, 1.5, 2.25)
    logged = json.loads((result.path / "nextx-jumps.json").read_text())["jumps"]
    assert logged[0]["verified"] == first["verified"]
    from nextx.errors import NextxError

    with raises_whole(NextxError, "--next-adaptive and --next-verify measure offset jumps. Use --next-apply offset."):
        GRPORunConfig(output_dir="x", next_at=40, save_every=10, next_apply="refactor", next_verify=2)
