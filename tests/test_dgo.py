"""DGO building blocks: experiences, the bank (file, retrieval, renewal by similarity and validation),
the annealed mixture, the rule-based generator of the embedded addition task, the rewrite filter."""

import json

import pytest
from helpers import raises_whole

from nextx.errors import NextxError
from nextx.train.dgo.bank import ExperienceBank
from nextx.train.dgo.experience import Experience, is_experience, leaks_answer, render
from nextx.train.dgo.filters import keep_rewrites, rejection_reason
from nextx.train.dgo.generator import RuleGenerator
from nextx.train.dgo.schedule import experience_share, with_experience

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

    def score(texts):
        seen.append(list(texts))
        return 0.5 + sum(useful.get(t, 0.0) for t in texts) + (0.02 if CARRY.replace("one", "1") in texts else 0)

    near = CARRY.replace("one", "1")
    decisions = bank.renew([Experience(NO_CARRY, "12+34=", 1), Experience(FORMAT, "12+34=", 1),
                            Experience(near, "19+28=", 1)], score)
    assert [d.action for d in decisions] == ["added", "rejected", "replaced"]
    assert decisions[0].similarity < 0.8 <= decisions[2].similarity and decisions[2].nearest == 0
    assert bank.texts == [near, NO_CARRY] and bank.entries[0].score == pytest.approx(0.57)
    assert seen == [[CARRY], [CARRY, NO_CARRY], [CARRY, NO_CARRY, FORMAT], [near, NO_CARRY]]
    assert bank.retrieve("ones digit carry 9+8", k=1) == [near]
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
