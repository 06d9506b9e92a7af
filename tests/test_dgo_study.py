"""DGO beyond the loop: the experience-reading tiny model (word and clause tokens, warm-up rules), test-time
scaling rounds that renew from validation prompts only, the ablation switches, and DGO on a user's
dataset with its validation split."""

import json
import random
from types import SimpleNamespace

import pytest
from test_dgo import CARRY, NO_CARRY, _rollout

from nextx.errors import NextxError
from nextx.train.experiences.generator import CLAUSES, WORDS, RuleGenerator, wrong_attempt
from nextx.train.experiences.line import Experience
from nextx.train.tasks import Example, get_task


def _rules_sample(n=400):
    """Rules the generator writes for right, wrong and malformed attempts at random additions."""
    task, rng, generate = get_task("addition"), random.Random(0), RuleGenerator()
    rules = set()
    for example in task.train_examples(n, seed=3):
        for attempt in (example.answer, wrong_attempt(example.answer, rng), "x" + example.answer):
            rules.add(generate(example.prompt, attempt, example.answer))
    return rules - {None}


@pytest.mark.parametrize("tokens", ["words", "clauses"])
def test_rule_tokens_cover_every_rule_and_round_trip(tokens):
    """The DGO tokenizer: each generator word is one token (with its leading space), so a rule is ~4×
    shorter than in characters, and with ``clauses`` each of its three clauses is one token (a rule is
    9 tokens: WHEN, clause, ".", IF, clause, ".", THEN, clause, "."); any other text still splits into
    characters (never <unk>), and decoding gives the text back exactly."""
    from nextx.train.tiny_model import TinyRecipe, experience_words, tokenizer_alphabet
    from nextx.train.tokenizer import char_tokenizer

    recipe = TinyRecipe(experiences=True, tokens=tokens)
    tokenizer = char_tokenizer(tokenizer_alphabet(get_task("addition"), recipe), experience_words(recipe))
    rules = _rules_sample()
    assert len(rules) >= 8
    for rule in rules:
        text = rule + "\n47+38="
        ids = tokenizer(text)["input_ids"]
        pieces = tokenizer.convert_ids_to_tokens(ids)
        assert tokenizer.decode(ids) == text and tokenizer.unk_token_id not in ids
        if tokens == "clauses":
            assert len(ids) == 9 + 7 and [p.strip() in CLAUSES for p in pieces[:9]] == [False, True, False] * 3
        else:
            assert all(p.strip(" .\n").isdigit() or p.strip() in WORDS or len(p) == 1 for p in pieces)
            assert not any(len(p) == 1 and p.isalpha() for p in pieces[:-6])  # no word of a rule spelt out
            assert len(ids) < len(text) / 3
    odd = "WHENx oneself anyone column 4 a column sums to ten or morex"
    ids = tokenizer(odd)["input_ids"]
    assert tokenizer.decode(ids) == odd and tokenizer.unk_token_id not in ids
    assert tokenizer.convert_ids_to_tokens(ids)[:5] == ["W", "H", "E", "N", "x"]  # a word inside another: letters


def test_warm_up_rules_are_what_retrieval_delivers():
    """The DGO tiny model's warm-up guide: answers unchanged; ``own`` shows only the right answer's rule
    of the problem itself, ``any`` also error rules and other problems' rules."""
    from nextx.train.tiny_model import _experience_guide

    task = get_task("addition")
    pool = task.train_examples(200, seed=5)
    generate = RuleGenerator()
    for mode in ("own", "any"):
        guide, rng = _experience_guide(mode, pool), random.Random(1)
        own = foreign = errors = 0
        for example in pool[:200]:
            guided = guide(example, rng)
            rule, problem = guided.prompt.rsplit("\n", 1)
            assert (problem, guided.answer) == (example.prompt, example.answer)
            own += rule == generate(example.prompt, example.answer, example.answer)
            errors += "wrong" in rule or "different number" in rule
            foreign += rule not in {generate(example.prompt, a, example.answer)
                                    for a in (example.answer, *(wrong_attempt(example.answer, random.Random(s))
                                                                for s in range(60)))}
        if mode == "own":
            assert own == 200 and errors == 0
        else:
            assert 50 < own < 120 and errors > 30 and foreign > 5


def test_ablations_change_only_their_component():
    """--dgo-ablate: the schedule (annealing: first share throughout; rft: none), the distillation data
    (rephrasing: guided trajectories only; rft: right answers to plain prompts, no guided ones)."""
    from nextx.train.config import GRPORunConfig
    from nextx.train.dgo.loop import ABLATIONS, ablated_schedule, internalize

    paper = (1.0, 0.5, 0.25)
    assert ablated_schedule(paper, "annealing") == (1.0,) and ablated_schedule(paper, "rft") == (0.0,)
    assert all(ablated_schedule(paper, a) == paper for a in ("none", "renewal", "rephrasing", "distillation"))
    assert set(ABLATIONS) == set(GRPORunConfig.__dataclass_fields__["dgo_ablate"].metadata["choices"])
    rollouts = [_rollout("47+38=", "85", "85", CARRY), _rollout("12+34=", "46", "46", NO_CARRY),
                _rollout("20+20=", "40", "40"), _rollout("1+1=", "3", "2")]
    task = get_task("addition")

    def run(ablate):  # a rewriter that re-authors every trajectory as a sum written out
        return internalize(rollouts, lambda items: [f"{i.problem}{i.completion}" for i in items], task,
                           GRPORunConfig(output_dir="x", dgo_ablate=ablate))

    kept, guided = run("none")
    assert kept == [] and [g.problem for g in guided] == ["47+38=", "12+34="]  # the filter drops "47+38=85"
    kept, guided = run("rephrasing")  # not rewritten: the trajectories themselves, under plain prompts
    assert kept == [("47+38=", "85"), ("12+34=", "46")] and [g.problem for g in guided] == ["47+38=", "12+34="]
    kept, guided = run("rft")  # the plain right answers in both pools; the wrong 1+1=3 in neither
    assert kept == [("20+20=", "40")] and [(g.prompt, g.completion, g.experiences) for g in guided] == [
        ("20+20=", "40", [])]


DGO_SMALL = ["--steps", "2", "--save-every", "1", "--prompts-per-step", "4", "--num-generations", "4", "--lr", "3e-3",
             "--dgo-iterations", "2", "--dgo-validation-size", "20", "--dgo-initial", "16", "--dgo-candidates", "2",
             "--dgo-sft-epochs", "1", "--dgo-sft-batch", "8"]


@pytest.mark.parametrize("ablate", ["rft", "distillation", "renewal", "annealing"])
def test_ablated_dgo_runs(tmp_path, dgo_tiny, cli_runner, ablate):
    """rft: no guided prompt, an empty bank, the SFT of right plain answers starts iteration 2;
    distillation: iteration 2 starts from iteration 1's RL policy itself (merged: the same logits);
    renewal: no candidate is tried, the bank stays the initial one; annealing: every prompt guided
    in both iterations. The others distil as DGO does."""
    import torch

    from nextx.cli.main import cli
    from nextx.train.dgo.loop import last_checkpoint
    from nextx.train.runs import load_for_eval

    out = tmp_path / "dgo"
    result = cli_runner.invoke(cli, ["train", "-o", str(out), "--algo", "dgo", "--dgo-ablate", ablate, *DGO_SMALL])
    assert result.exit_code == 0, result.output
    first, second = json.loads((out / "nextx-dgo.json").read_text())["iterations"]
    if ablate == "rft":
        assert first["guided_prompts"] == second["guided_prompts"] == 0 and first["candidates"] == 0
        assert first["distilled"]["examples"] == 2 * first["rewrites_kept"] == 2 * first["guided_kept"] > 0
        assert (out / "experience_bank.jsonl").read_text() == ""
    elif ablate in ("renewal", "annealing"):
        assert first["distilled"]["examples"] > 0 and first["guided_prompts"] == 8
        assert second["guided_prompts"] == (8 if ablate == "annealing" else 4)
        if ablate == "renewal":
            initial = json.loads((out / "nextx-dgo.json").read_text())["initial_bank"]
            assert first["candidates"] == second["candidates"] == 0 and first["renewal"] == []
            assert len((out / "experience_bank.jsonl").read_text().splitlines()) == initial
    else:
        assert first["guided_prompts"] == 8 and "distilled" not in first
        assert second["model"] == first["continued"]["path"] == str(out / "policy-1")
        policy, tokenizer = load_for_eval(last_checkpoint(out / "iteration-1"), str(dgo_tiny))
        merged, _ = load_for_eval(out / "policy-1")
        ids = tokenizer(["47+38=", CARRY + "\n12+34="], return_tensors="pt", padding=True)
        with torch.no_grad():
            adapted, merged_logits = policy(**ids).logits, merged(**ids).logits  # float32 merge: 1e-5 of the largest
            assert (adapted - merged_logits).abs().max() <= 1e-5 * adapted.abs().max()


def test_tts_rounds_renew_from_validation_only(dgo_tiny):
    """Round 0 is plain; each later round retrieves from the bank renewed after the one before; the
    generator only ever reads validation prompts; overlapping test and validation prompts are refused."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nextx.train.dgo.bank import ExperienceBank
    from nextx.train.dgo.loop import guided_accuracy
    from nextx.train.dgo.tts import experience_rounds
    from nextx.train.evaluate import evaluate

    task = get_task("addition")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(dgo_tiny), AutoTokenizer.from_pretrained(dgo_tiny)
    test, validation = task.eval_split(60), task.validation_split(40)
    seen = []

    def generate(problem, completion, answer):
        seen.append(problem)
        return RuleGenerator()(problem, completion, answer)

    bank = ExperienceBank([Experience(CARRY, "47+38=", 0)])
    start = ExperienceBank(list(bank.entries))
    rounds = experience_rounds(model, tokenizer, task, bank, test, validation, generate, rounds=3, candidates=4)
    assert [r.round for r in rounds] == [0, 1, 2, 3]
    assert rounds[0].accuracy == evaluate(model, tokenizer, task, test).accuracy
    assert rounds[1].accuracy == guided_accuracy(model, tokenizer, task, test, start, k=1, style="compact").accuracy
    assert rounds[3].accuracy == guided_accuracy(model, tokenizer, task, test, bank, k=1, style="compact").accuracy
    assert seen and set(seen) <= {e.prompt for e in validation}
    assert rounds[1].added + rounds[1].replaced + rounds[1].rejected > 0 and rounds[3].bank == len(bank)
    with pytest.raises(ValueError, match="overlap"):
        experience_rounds(model, tokenizer, task, bank, test, test[:5], generate, rounds=2)


def test_eval_experiences_command(tmp_path, dgo_tiny, cli_runner):
    """`nextx eval MODEL --experiences BANK --rounds 2 --json`: a line per round, the renewed bank
    written where asked (refused without --force when it exists)."""
    from nextx.cli.main import cli

    bank = tmp_path / "bank.jsonl"
    bank.write_text(json.dumps(Experience(CARRY, "47+38=", 0).to_dict()) + "\n")
    args = ["eval", str(dgo_tiny), "--experiences", str(bank), "--rounds", "2", "--save-bank", str(tmp_path / "new.jsonl")]
    result = cli_runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["round"] for r in report["rounds"]] == [0, 1, 2] and report["test_prompts"] == 500
    assert (tmp_path / "new.jsonl").is_file() and report["style"] == "compact" and report["k"] == 1
    again = cli_runner.invoke(cli, args)
    assert again.exit_code != 0 and "already exists" in again.output and "--force" in again.output


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_dataset_task_splits_validation_off_by_prompt_hash(tmp_path):
    """Validation = the prompts with the smallest hashes (≤ a fifth), never trained on, independent
    of row order; duplicates of a prompt stay on one side; the verifier scores."""
    from nextx.train.tasks.dataset import DatasetTask, verifier_score

    rows = [Example(f"{i}+{i}=", str(2 * i)) for i in range(100)] + [Example("3+3=", "6")]
    task = DatasetTask(rows, verifier_score("exact"), validation_size=30, max_new_tokens=5)
    flipped = DatasetTask(rows[::-1], verifier_score("exact"), validation_size=30, max_new_tokens=5)
    validation = {e.prompt for e in task.validation_split()}
    assert len(validation) == 20 == len(task.validation_split())  # capped at a fifth of 100 distinct prompts
    assert validation == {e.prompt for e in flipped.validation_split()}
    assert not validation & {e.prompt for e in task.train_examples(500, seed=0)}
    assert len(task.training) == 101 - 20 - ("3+3=" in validation)
    assert task.score(" 6 ", "6") == 1.0 and task.max_new_tokens == 5
    with pytest.raises(NextxError, match="10"):
        DatasetTask(rows[:5], verifier_score("exact"), validation_size=2, max_new_tokens=5)


def test_dgo_on_a_dataset(tmp_path, dgo_tiny, cli_runner, monkeypatch):
    """`nextx train --algo dgo --dataset FILE --model M`: training prompts never include validation ones;
    a dataset the rule generator cannot read is refused in one line."""
    import nextx.train.dgo.loop as loop
    from nextx.cli.main import cli
    from nextx.train.tasks.dataset import DatasetTask

    data = tmp_path / "sums.jsonl"
    rows = [{"question": e.prompt, "solution": e.answer} for e in get_task("addition").train_examples(120, seed=9)]
    _write_jsonl(data, rows)
    chunks = []
    real = loop.iteration_dataset
    monkeypatch.setattr(loop, "iteration_dataset", lambda chunk, *a, **k: chunks.append(chunk) or real(chunk, *a, **k))
    out = tmp_path / "dgo"
    common = ["--dataset", str(data), "--prompt-column", "question", "--answer-column", "solution", "--model",
              str(dgo_tiny), "--dgo-prompt", "compact", "--max-completion-length", "5"]
    result = cli_runner.invoke(cli, ["train", "-o", str(out), "--algo", "dgo", *common, *DGO_SMALL])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "nextx-dgo.json").read_text())
    task = DatasetTask.from_config(SimpleNamespace(**record["config"]))
    validation = {e.prompt for e in task.validation_split()}
    assert record["validation_prompts"] == len(validation) == 20 and len(chunks) == 2
    assert not validation & {e.prompt for chunk in chunks for e in chunk}
    _write_jsonl(data, [{"question": f"word {i}?", "solution": "yes"} for i in range(40)])
    refused = cli_runner.invoke(cli, ["train", "-o", str(tmp_path / "other"), "--algo", "dgo", *common, *DGO_SMALL])
    assert refused.exit_code != 0 and "rule-based experience generator wrote no experience" in refused.output


def test_ablation_report_pairs_arms_with_grpo_and_dgo():
    """build_report: GRPO at equal RL steps (K·S) and at its last checkpoint saved within an arm's
    wall-clock; each ablation minus DGO, TTS minus zero per round, paired by seed."""
    from nextx.studies.dgo_ablation import _last_before, build_report

    assert _last_before({25: 10.0, 50: 20.0, 75: 30.0}, 25.0) == 50 and _last_before({25: 10.0}, 5.0) == 25

    def seed(shift):
        grpo = {"steps": 900, "clock": {"300": 100.0, "600": 200.0, "900": 300.0}, "seconds": 310.0,
                "accuracy": {"300": 0.5 + shift, "600": 0.6 + shift}}
        arms = {"none": {"zero": 0.7 + shift, "tts": [0.69 + shift, 0.71 + shift], "bank": [3, 4], "seconds": 250.0,
                         "stage_seconds": {"rl": 150.0, "distil": 100.0}},
                "rft": {"zero": 0.72 + shift, "tts": [0.72 + shift, 0.70 + shift], "bank": [0, 1], "seconds": 200.0,
                        "stage_seconds": {"rl": 120.0, "distil": 80.0}}}
        return {"grpo": grpo, "arms": arms, "base_accuracy": 0.4 + shift}

    report = build_report({"steps": 100, "dgo_iterations": 3}, {"0": seed(0.0), "1": seed(0.02), "2": seed(-0.01)})
    none, rft = report["arms"]["none"], report["arms"]["rft"]
    assert none["zero_minus_grpo"]["mean"] == pytest.approx(0.2) and none["grpo_steps_at_equal_wall"] == [600] * 3
    assert none["zero_minus_grpo_equal_wall"]["mean"] == pytest.approx(0.1)
    assert [r["mean"] for r in none["tts_minus_zero"]] == pytest.approx([-0.01, 0.01])
    assert rft["zero_minus_dgo"]["mean"] == pytest.approx(0.02) and "zero_minus_dgo" not in none
    assert none["cost_vs_grpo"]["mean"] == pytest.approx(2.5) and rft["stage_seconds"] == {"rl": 120.0, "distil": 80.0}
    assert report["grpo"]["gain_per_1000_seconds"]["mean"] == pytest.approx(1.0)
    assert none["zero_gain_per_1000_seconds"]["mean"] == pytest.approx(1.2)


def test_every_bench_arm_is_a_valid_run():
    """Each arm of the ablation bench gives settings a DGO run accepts (the demo's, 100 steps a phase)."""
    from nextx.studies.demo import DemoConfig
    from nextx.studies.dgo_ablation import ARMS, arm_settings
    from nextx.train.config import GRPORunConfig

    settings = {**DemoConfig().settings(), "next_at": None, "next_ahead": None, "steps": 100}
    for arm in ARMS:
        config = GRPORunConfig(output_dir="x", **{**settings, "algo": "dgo", **arm_settings(arm, 25)})
        assert config.dgo_ablate == ("none" if arm in ("next", "guided-only") else arm)
        assert config.dgo_beta == (0.0 if arm == "guided-only" else 0.5)
        assert (config.next_at is not None) == (arm == "next")
    with pytest.raises(ValueError, match="unknown arm"):
        arm_settings("nope", 25)
