"""DGO: experiences, the bank (file, retrieval, renewal by similarity and validation), the annealed
mixture, the generators, the rewrite filter, the distillation SFT, the K-iteration loop end to end on
the embedded model, and the GRPO-vs-DGO report."""

import json

import numpy as np
import pytest
import torch
from helpers import raises_whole

from nextx.errors import NextxError
from nextx.train.dgo.bank import ExperienceBank
from nextx.train.dgo.filters import keep_rewrites, rejection_reason
from nextx.train.dgo.schedule import experience_share, with_experience
from nextx.train.experiences.generator import RuleGenerator
from nextx.train.experiences.line import Experience, is_experience, leaks_answer, render

CARRY = render("adding multi-digit numbers", "a column sums to ten or more",
               "write its ones digit and carry one into the next column")
NO_CARRY = render("adding multi-digit numbers", "no column sums to ten or more", "add each column on its own, no carry")
BANK_LINE = 'Each line: {"text": "WHEN … IF … THEN …", "source": …, "round": …, "score": …}'
FORMAT = render("answering an addition", "the answer is not a plain number", "write only the digits of the sum")


def test_rule_generator_names_the_column_or_carry():
    generate = RuleGenerator()
    assert generate("47+38=", "75", "85") == ("WHEN adding multi-digit numbers. IF the ones column sums to ten or "
                                              "more. THEN add the carried one to the tens digit.")
    assert generate("47+38=", "85", "85") == CARRY and generate("12+34=", "46", "46") == NO_CARRY
    assert generate("12+34=", "47", "46") == ("WHEN adding multi-digit numbers. IF the ones digit is wrong. THEN add "
                                              "the ones digits again, column by column.")
    assert generate("99+1=", "10", "100").startswith("WHEN adding multi-digit numbers. IF the sum has a different")
    assert generate("12+34=", "4a", "46") == FORMAT
    assert generate("not a sum", "1", "1") is None
    assert all(is_experience(e) for e in (CARRY, NO_CARRY, FORMAT))


def test_answer_leaks_are_detected():
    assert leaks_answer("WHEN adding. IF 47+38. THEN the sum is 85.", "85")
    assert not leaks_answer("WHEN adding. IF 185 appears. THEN check.", "85") and not leaks_answer(CARRY, "85")


def test_bank_renewal_adds_replaces_and_rejects_by_similarity_and_validation(tmp_path):
    """A far candidate is added only if validation improves; a near one (cosine ≥ 0.8) replaces its
    nearest entry only if validation improves; the score function sees exactly those banks."""
    bank = ExperienceBank([Experience(CARRY, "47+38=", 0)])
    seen = []
    useful = {NO_CARRY: 0.05, FORMAT: 0.0}

    def score(candidate_bank):
        texts = candidate_bank.texts
        seen.append(texts)
        return 0.5 + sum(useful.get(t, 0.0) for t in texts) + (0.02 if CARRY.replace("one", "1") in texts else 0)

    near = CARRY.replace("one", "1")
    decisions = bank.renew([Experience(NO_CARRY, "12+34=", 1), Experience(FORMAT, "12+34=", 1),
                            Experience(near, "19+28=", 1)], score)
    assert [d.action for d in decisions] == ["added", "rejected", "replaced"]
    assert decisions[0].similarity < 0.8 <= decisions[2].similarity and decisions[2].nearest == 0
    assert bank.texts == [near, NO_CARRY] and bank.entries[0].score == pytest.approx(0.57)
    assert seen == [[CARRY], [CARRY, NO_CARRY], [CARRY, NO_CARRY, FORMAT], [near, NO_CARRY]]
    assert bank.retrieve(["ones digit carry 9+8"], k=1) == [[near]]
    assert bank.retrieve(["12+35=", "19+27="], k=1) == [[NO_CARRY], [near]]  # by the nearest source problem
    assert bank.retrieve(["12+35="], k=0) == [[]] and ExperienceBank().retrieve(["1+1="]) == [[]]
    path = bank.save(tmp_path / "bank.jsonl")
    again = ExperienceBank.load(path)
    assert again.entries == bank.entries


def test_bank_file_errors_name_the_line(tmp_path):
    path = tmp_path / "bank.jsonl"
    path.write_text(json.dumps({"text": CARRY}) + '\n{"txt": 1}\n')
    with raises_whole(NextxError, f"line 2 of the experience bank is not an experience object ({path}). " + BANK_LINE):
        ExperienceBank.load(path)
    path.write_text('{"text": "carry the one"}\n')
    with raises_whole(NextxError, f"line 1 of the experience bank is not a WHEN … IF … THEN … line ({path}). " + BANK_LINE):
        ExperienceBank.load(path)


def test_annealed_mixture_follows_the_paper_schedule_exactly():
    assert [experience_share(k) for k in range(4)] == [1.0, 0.5, 0.25, 0.25]
    for share, expected in ((1.0, 16), (0.5, 8), (0.25, 4)):
        chosen = with_experience(16, share, seed=3)
        assert len(chosen) == expected and chosen <= set(range(16))
    assert with_experience(16, 0.5, seed=3) == with_experience(16, 0.5, seed=3)
    with raises_whole(ValueError, "experience share must be in [0, 1], not 1.5"):
        with_experience(4, 1.5, seed=0)


def test_rewrite_filter_and_top_k():
    def correct(text, answer):
        return text.strip().endswith(answer)

    assert rejection_reason("7+8 is 15, carry: 85", "85", max_chars=100, correct=correct) is None
    assert rejection_reason("so 84", "85", max_chars=100, correct=correct) == "wrong final answer"
    assert rejection_reason("using the experience, 85", "85", max_chars=100, correct=correct) == \
        "still refers to the experience"
    assert rejection_reason("x" * 50 + " 85", "85", max_chars=20, correct=correct) == "longer than 20 characters"
    assert rejection_reason("a" * 30 + " 85", "85", max_chars=100, correct=correct) == "contains a long meaningless run"
    kept = keep_rewrites({"47+38=": ["long way to 85", "85", "so 84"], "1+1=": ["3"]}, {"47+38=": "85", "1+1=": "2"},
                         max_chars=100, top_k=1, correct=correct)
    assert kept == {"47+38=": ["85"]}


def test_cli_prints_a_bank(tmp_path, cli_runner):
    from nextx.cli.main import cli

    ExperienceBank([Experience(CARRY, "47+38=", 1, 0.61)]).save(tmp_path / "experience_bank.jsonl")
    result = cli_runner.invoke(cli, ["dgo", "bank", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entries"] == [{"text": CARRY, "source": "47+38=", "round": 1, "score": 0.61}]
    (tmp_path / "bad.jsonl").write_text("not json\n")
    result = cli_runner.invoke(cli, ["dgo", "bank", str(tmp_path / "bad.jsonl")])
    assert result.exit_code == 1 and "line 1 of the experience bank is not an experience object" in result.stderr


def _rollout(problem, completion, answer, experiences="", reward=None):
    row = {"problem": problem, "answer": answer, "experiences": experiences,
           "prompts": (experiences + "\n" if experiences else "") + problem}
    return row, completion, float(completion == answer) if reward is None else reward


def test_guided_trajectories_keep_right_distinct_shortest_top_k():
    from nextx.train.dgo.loop import guided_trajectories

    rollouts = [_rollout("47+38=", "85", "85", CARRY), _rollout("47+38=", "85", "85", CARRY),
                _rollout("47+38=", " 85", "85", CARRY, reward=1.0), _rollout("47+38=", "075", "85", CARRY, reward=1.0),
                _rollout("47+38=", "84", "85", CARRY), _rollout("12+34=", "46", "46")]  # plain: not guided
    kept = guided_trajectories(rollouts, top_k=2)
    assert [(g.problem, g.completion, g.prompt, g.experiences) for g in kept] == [
        ("47+38=", "85", CARRY + "\n47+38=", [CARRY]), ("47+38=", " 85", CARRY + "\n47+38=", [CARRY])]


def test_distillation_mixture_has_the_beta_share():
    from nextx.train.dgo.loop import mixture

    rewrites = [(f"{i}+1=", str(i + 1)) for i in range(6)]
    guided = [(f"x\n{i}+2=", str(i + 2)) for i in range(2)]
    mixed = mixture(rewrites, guided, beta=0.5, seed=0)
    assert len(mixed) == 8 and sum(p in rewrites for p in mixed) == 4 and sum(p in guided for p in mixed) == 4
    assert set(mixed) >= set(guided)  # the smaller pool is drawn whole, then with replacement
    assert mixture(rewrites, [], 0.5, 0) == rewrites and mixture([], guided, 0.5, 0) == guided
    assert mixture(rewrites, guided, beta=0.25, seed=0).count(rewrites[0]) <= 1
    assert sum(p in rewrites for p in mixture(rewrites, guided, beta=0.25, seed=0)) == 2


def test_renewal_candidates_are_new_distinct_and_capped():
    from nextx.train.dgo.loop import candidates_from

    bank = ExperienceBank([Experience(CARRY, "47+38=", 0)])
    rollouts = [_rollout("47+38=", "85", "85"), _rollout("12+34=", "46", "46"), _rollout("12+34=", "46", "46"),
                _rollout("12+34=", "x", "46")]
    found = candidates_from(rollouts, RuleGenerator(), bank, limit=5, seed=0, round_=2)
    assert sorted(e.text for e in found) == sorted([NO_CARRY, FORMAT])  # CARRY is in the bank already
    assert {e.round for e in found} == {2} and {e.source for e in found} == {"12+34="}
    assert len(candidates_from(rollouts, RuleGenerator(), bank, limit=1, seed=0, round_=2)) == 1


def test_reward_function_records_every_rollout_with_its_row():
    from nextx.train.grpo import _reward_function

    record = []
    reward = _reward_function(None, "exact", record)
    values = reward(["85", "84"], ["85", "85"], prompts=["p", "p"], problem=["47+38=", "47+38="],
                    experiences=["", ""], trainer_state=object(), completion_ids=[[1], [2]])
    assert values == [1.0, 0.0]
    assert record == [({"answer": "85", "prompts": "p", "problem": "47+38=", "experiences": ""}, "85", 1.0),
                      ({"answer": "85", "prompts": "p", "problem": "47+38=", "experiences": ""}, "84", 0.0)]


def test_distillation_sft_learns_its_pairs_from_the_base(tmp_path, dgo_tiny):
    """The internalisation step: TRL's SFTTrainer from the base on (prompt, completion) pairs, loss
    on the completion: afterwards the model answers those prompts with those completions."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nextx.train.config import GRPORunConfig
    from nextx.train.dgo.loop import distil
    from nextx.train.evaluate import greedy_completions

    pairs = [("47+38=", "58"), (CARRY + "\n12+34=", "64")] * 16  # deliberately wrong sums: learnt, not known
    config = GRPORunConfig(output_dir=str(tmp_path), dgo_sft_lr=3e-3, dgo_sft_epochs=4, dgo_sft_batch=8)
    out = distil(str(dgo_tiny), pairs, tmp_path / "distilled", config)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    assert greedy_completions(model, tokenizer, ["47+38=", CARRY + "\n12+34="], 4) == ["58", "64"]
    base = AutoModelForCausalLM.from_pretrained(dgo_tiny)
    assert greedy_completions(base, AutoTokenizer.from_pretrained(dgo_tiny), ["47+38="], 4) != ["58"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["distilled"]  # no scratch left behind


def test_short_dgo_run_end_to_end_with_next_jumps(tmp_path, dgo_tiny, cli_runner):
    """Two DGO iterations on the embedded model through `nextx train --algo dgo`: annealed shares,
    renewal by validation, rewrite + SFT from the base starting iteration 2, NExt jumping inside each
    RL phase, and the last iteration a run every nextx command reads."""
    from nextx import load_run
    from nextx.cli.main import cli

    out = tmp_path / "dgo"
    args = ["train", "-o", str(out), "--algo", "dgo", "--steps", "4", "--save-every", "1", "--prompts-per-step", "4",
            "--num-generations", "4", "--lr", "3e-3", "--dgo-iterations", "2", "--dgo-validation-size", "20",
            "--dgo-initial", "16", "--dgo-candidates", "2", "--dgo-sft-epochs", "1", "--dgo-sft-batch", "8",
            "--next-at", "2", "--next-every", "0", "--method", "linear", "--horizon", "1", "--next-ahead", "1"]
    result = cli_runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out / "iteration-2")
    record = json.loads((out / "nextx-dgo.json").read_text())
    first, second = record["iterations"]
    assert (first["share"], first["guided_prompts"], second["share"], second["guided_prompts"]) == (1.0, 16, 0.5, 8)
    assert first["rollouts"] == 16 * 4 and first["guided_kept"] > 0 and first["rewrites_kept"] > 0
    assert len(first["renewal"]) == first["candidates"] and all(
        d["action"] in ("added", "replaced", "rejected") for d in first["renewal"])
    assert first["distilled"]["path"] == str(out / "distilled-1") == second["model"] and "distilled" not in second
    adapter = json.loads((out / "iteration-2" / "checkpoint-4" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(out / "distilled-1")
    for k in (1, 2):
        train_record = json.loads((out / f"iteration-{k}" / "nextx-train.json").read_text())
        assert [j["step"] for j in train_record["jumps"] if j.get("jumped", True)] == [2]
        assert ExperienceBank.load(out / f"iteration-{k}" / "experience_bank.jsonl").entries
    assert load_run(out / "iteration-2").steps == [1, 2, 3, 4]
    bank = cli_runner.invoke(cli, ["dgo", "bank", str(out), "--json"])
    assert bank.exit_code == 0 and len(json.loads(bank.stdout)["entries"]) == record["iterations"][-1]["bank"]


def test_dgo_report_pairs_each_seed_and_states_intervals():
    """DGO's checkpoints on GRPO's isotonic curve (as a jump at step 0), final accuracy differences
    paired by seed, intervals over seeds; DGO 50 steps ahead (capped at GRPO's end) saves 50 at each
    checkpoint up to 250, 25 at 275 and 0 at 300: (10·50 + 25) / 12."""
    from nextx.studies.dgo_compare import build_dgo_report

    def grpo(offset):
        return {s: 0.3 + 0.001 * s + offset for s in range(0, 301, 25)}

    results = {}
    for seed, offset in enumerate((0.0, 0.01, -0.01, 0.02, 0.0)):
        vanilla = grpo(offset)
        ahead = {s: 0.3 + 0.001 * min(s + 50, 300) + offset for s in range(0, 301, 25)}
        results[str(seed)] = {"curves": {"grpo": vanilla, "dgo": ahead}, "guided": ahead[300] + 0.02,
                              "seconds": {"grpo": 50.0, "dgo": 80.0}}
    report = build_dgo_report({"steps": 100}, results)
    assert report["per_seed"]["0"]["steps_saved"] == pytest.approx(525 / 12)
    assert report["summary"]["steps_saved"]["mean"] == pytest.approx(525 / 12)
    assert report["summary"]["steps_saved"]["se"] == pytest.approx(0.0, abs=1e-9)  # the same 50-step lead in every seed
    assert report["final_accuracy_delta"]["mean"] == pytest.approx(0.0)
    assert report["final_guided_accuracy_delta"]["mean"] == pytest.approx(0.02)
    assert report["final_accuracy"]["3"] == {"grpo": pytest.approx(0.62), "dgo": pytest.approx(0.62),
                                             "dgo_guided": pytest.approx(0.64)}
    assert report["headline"].startswith("dgo vs grpo: saves steps — steps saved +")
    assert report["headline"].endswith("with experiences at test time +2.0 points (95% CI +2.0 to +2.0).")


def test_a_named_sentence_encoder_replaces_tfidf(tmp_path):
    """--dgo-retriever PATH: mean-pooled, normalised vectors of a transformers encoder (a tiny BERT
    built from a config here): the same text is similarity 1, and the bank retrieves and renews by them."""
    import string

    from transformers import BertConfig, BertModel, BertTokenizerFast

    from nextx.train.dgo.retrieval import ModelEmbedder, embedder

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.ascii_lowercase, *string.digits, ".", "+", "=",
             *("##" + c for c in string.ascii_lowercase + string.digits)]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path)
    encode = embedder(str(tmp_path))
    assert isinstance(encode, ModelEmbedder) and isinstance(embedder("tfidf"), type(ExperienceBank().embed))
    vectors = encode([CARRY, NO_CARRY, CARRY])
    assert vectors.shape == (3, 16) and np.allclose(vectors @ vectors.T, (vectors @ vectors.T).T)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-6) and np.allclose(vectors[0], vectors[2], atol=1e-6)
    bank = ExperienceBank([Experience(CARRY, "47+38=", 0), Experience(NO_CARRY, "12+34=", 0)], encode)
    assert bank.nearest(NO_CARRY) == (1, pytest.approx(1.0, abs=1e-6))
    assert bank.retrieve(["12+34= " + NO_CARRY], k=1) == [[NO_CARRY]]
    decisions = bank.renew([Experience(NO_CARRY, "13+24=", 1)], lambda b: 0.5 + 0.1 * (b.entries[-1].source == "13+24="))
    assert [d.action for d in decisions] == ["replaced"] and bank.entries[1].source == "13+24="


def test_model_generator_and_policy_rewriter_use_the_model(dgo_tiny, monkeypatch):
    """A causal LM as generator: the first WHEN … IF … THEN … line of its answer, unless it leaks the
    answer; the policy rewriter returns one greedy rewrite per guided trajectory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import nextx.train.evaluate as evaluate
    from nextx.train.dgo.rewrite import Guided, PolicyRewriter
    from nextx.train.experiences.generator import ModelGenerator

    generate = ModelGenerator(str(dgo_tiny), max_new_tokens=8)
    assert generate("47+38=", "84", "85") is None  # the tiny model writes no rule
    said = []

    def answer(model, tokenizer, prompts, max_new_tokens):
        said.extend(prompts)
        return ["so: " + CARRY + " WHEN x. IF y. THEN z."]

    monkeypatch.setattr(evaluate, "greedy_completions", answer)
    assert generate("47+38=", "84", "85") == CARRY
    assert "[Problem]\n47+38=\n[Solution]\n84\n" in said[0]
    monkeypatch.setattr(evaluate, "greedy_completions", lambda *a: ["WHEN adding. IF 47+38. THEN write 85."])
    assert generate("47+38=", "85", "85") is None  # leaks the answer
    monkeypatch.undo()
    model, tokenizer = AutoModelForCausalLM.from_pretrained(dgo_tiny), AutoTokenizer.from_pretrained(dgo_tiny)
    items = [Guided("47+38=", [CARRY], CARRY + "\n47+38=", "85", "85"), Guided("1+1=", [], "1+1=", "2", "2")]
    rewrites = PolicyRewriter(model, tokenizer, 4)(items)
    assert len(rewrites) == 2 and all(isinstance(r, str) and len(r) <= 4 for r in rewrites)


def test_grpo_vs_dgo_pair_on_the_embedded_model(tmp_path, dgo_tiny, monkeypatch):
    """`run_pair` (the demo's and the bench's unit): GRPO for K·S steps and DGO's K iterations from the
    same base; DGO's checkpoints placed at their cumulative RL step; the guided accuracy scored."""
    from nextx.studies.dgo_compare import build_dgo_report, run_pair
    from nextx.train.tasks.addition import Addition

    small = Addition().population()[:300:3]
    monkeypatch.setattr(Addition, "test_population", lambda self: small)  # score 100 prompts, not 9,500
    settings = {"steps": 2, "save_every": 1, "prompts_per_step": 2, "num_generations": 2, "dgo_iterations": 2,
                "dgo_validation_size": 10, "dgo_initial": 8, "dgo_candidates": 1, "dgo_sft_epochs": 1}
    result = run_pair(tmp_path, settings, seed=0, log=lambda m: None)
    assert sorted(result["curves"]["grpo"]) == sorted(result["curves"]["dgo"]) == [0, 1, 2, 3, 4]
    assert result["curves"]["dgo"][0] == result["curves"]["grpo"][0]  # the same base
    assert 0 <= result["guided"] <= 1 and set(result["seconds"]) == {"grpo", "dgo"}
    record = json.loads((tmp_path / "grpo" / "nextx-train.json").read_text())
    assert record["config"]["steps"] == 4 and record["config"]["epsilon_high"] == 0.28
    assert record["model_path"] == str(dgo_tiny)
    report = build_dgo_report(settings, {"0": result})
    assert report["summary"]["seeds"] == 1 and "1 seed" in report["headline"]


def test_internalize_rewrites_filters_and_keeps_the_sources():
    """Right guided answers → rewriter → filter: a rewrite that still mentions the experience or is
    wrong is dropped; kept rewrites pair the plain problem with the text."""
    from nextx.train.config import GRPORunConfig
    from nextx.train.dgo.loop import internalize
    from nextx.train.tasks import get_task

    rollouts = [_rollout("47+38=", "85", "85", CARRY), _rollout("12+34=", "46", "46", NO_CARRY),
                _rollout("20+20=", "40", "40", NO_CARRY), _rollout("1+1=", "2", "2")]
    texts = {"47+38=": "85 as the experience says", "12+34=": "46", "20+20=": "41"}
    kept, guided = internalize(rollouts, lambda items: [texts[i.problem] for i in items], get_task("addition"),
                               GRPORunConfig(output_dir="x"))
    assert [g.problem for g in guided] == ["47+38=", "12+34=", "20+20="]  # the plain 1+1= was not guided
    assert kept == [("12+34=", "46")]


def test_demo_dgo_command_renders_the_comparison(tmp_path, cli_runner, monkeypatch):
    """`nextx demo --algo dgo`: the comparison's settings (per-iteration --steps, no jump), the table,
    the headline with its interval, report.json's path on stdout (the runs are replaced by a stub)."""
    import nextx.studies.dgo_compare as compare
    from nextx.cli.main import cli

    seen = {}

    def fake_compare(out, settings, seeds, log=print, console=None):
        seen.update(settings=settings, seeds=seeds)
        curve = {s: 0.4 + 0.001 * s for s in range(0, 151, 25)}
        results = {str(seed): {"curves": {"grpo": curve, "dgo": {s: a + 0.01 * seed for s, a in curve.items()}},
                               "guided": 0.5, "seconds": {"grpo": 1.0, "dgo": 2.0}} for seed in seeds}
        report = compare.build_dgo_report(settings, results)
        (out / "report.json").write_text(json.dumps(report))
        return report

    monkeypatch.setattr(compare, "compare", fake_compare)
    result = cli_runner.invoke(cli, ["demo", "-o", str(tmp_path / "d"), "--algo", "dgo", "--seeds", "0,1", "--steps", "50"])
    assert result.exit_code == 0, result.output
    assert seen["seeds"] == (0, 1) and seen["settings"]["steps"] == 50 and seen["settings"]["next_at"] is None
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "d" / "report.json")
    assert "GRPO vs DGO, 2 seed(s)" in result.stderr and "dgo vs grpo: " in result.stderr  # display: stderr
    assert (tmp_path / "d" / "report.json").is_file()


@pytest.mark.parametrize("line", ['{"text": "%s", "round": 2.9}', '{"text": "%s", "round": 1e400}',
                                  '{"text": "%s", "score": "0.5"}', '[' * 100_000 + ']' * 100_000, '"just text"'])
def test_bank_lines_of_the_wrong_kind_are_refused_not_coerced(tmp_path, line):
    path = tmp_path / "bank.jsonl"
    path.write_text(line.replace("%s", CARRY) + "\n")
    with raises_whole(NextxError, f"line 1 of the experience bank is not an experience object ({path}). " + BANK_LINE):
        ExperienceBank.load(path)


def test_a_bank_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "bank.jsonl"
    path.write_text("\ufeff" + json.dumps({"text": CARRY, "round": 2}) + "\n", encoding="utf-8")
    assert ExperienceBank.load(path).entries[0].round == 2
