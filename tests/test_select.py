"""Reward-verified jumps: scoring hooks, paired standard errors, selection that never hands out a
worse model — with the real embedded model and verifier where it matters."""

import json
import math
import os
import sys
from pathlib import Path

import pytest
from helpers import raises_whole

from nextx import load_run
from nextx.choose import choose_jump, select_by_reward
from nextx.cli.main import cli
from nextx.scoring import CommandScorer, FunctionScorer, Score, ScoreError, paired_difference


def test_paired_standard_error_on_a_known_case():
    x = Score(0.6, [1, 1, 1, 0, 0])
    y = Score(0.4, [1, 0, 1, 0, 0])
    delta, se = paired_difference(x, y)  # d = [0, 1, 0, 0, 0]: mean 0.2, sd √0.2
    assert delta == pytest.approx(0.2) and se == pytest.approx(math.sqrt(0.2) / math.sqrt(5))
    assert paired_difference(Score(0.5), y) == (pytest.approx(0.1), None)
    with raises_whole(ScoreError, "paired scores need the same items: 2 vs 5 per-item scores. "
                                "The evaluation must score the same items, in the same order, every time."):
        paired_difference(Score(0.5, [1, 0]), y)


class AheadScorer:
    """A stand-in evaluation whose per-item scores depend only on the steps ahead: the best jump is
    ``peak`` steps ahead; far jumps are worse than staying."""

    name = "stand-in"

    def __init__(self, peak: float, n: int = 400):
        self.peak, self.n = peak, n

    def score(self, candidate) -> Score:
        ahead = candidate.ahead
        p = 0.5 + 0.2 * (1 - abs(ahead - self.peak) / self.peak) if ahead <= 2 * self.peak else 0.1
        good = round(p * self.n)
        return Score(good / self.n, [1.0] * good + [0.0] * (self.n - good))


def test_selection_takes_the_best_candidate_that_beats_stay(trl_run):
    run = load_run(trl_run)
    choice = select_by_reward(run, AheadScorer(peak=20), ["linear"], [5, 20, 40, 400], horizon=2)
    assert choice.jump and choice.method == "linear" and choice.ahead == 20
    rows = {row["ahead_steps"]: row for row in choice.candidates if row["method"] == "linear"}
    assert rows[400]["delta"] < 0 and not rows[400]["beats_stay"]  # the harmful jump is never chosen
    assert rows[20]["chosen"] and sum(r["chosen"] for r in choice.candidates) == 1
    assert choice.extrapolation.provenance["selection"]["criterion"] == "reward"


def test_selection_takes_no_jump_when_every_candidate_is_worse(trl_run):
    run = load_run(trl_run)
    choice = choose_jump(run, method="linear", select="reward", scorer=AheadScorer(peak=1), aheads=[100, 400],
                         horizon=2)
    assert not choice.jump and choice.extrapolation is None
    assert choice.reason == "no jump beats staying on this evaluation (stand-in)"


def _eval_script(tmp_path, body: str) -> str:
    script = tmp_path / "my_eval.py"
    script.write_text(body)
    return f"{sys.executable} {script} {{path}}"


@pytest.mark.parametrize("body,message", [
    ("print('not json')",
     "did not print a JSON object as its last line. Print e.g. {\"score\": 0.61, \"per_item\": [1, 0, ...]} on stdout."),
    ("import sys; print('boom', file=sys.stderr); sys.exit(3)", "exited with code 3: boom."),
    ("import time; time.sleep(30)", "timed out after 1 s. Speed up the evaluation or raise --eval-timeout."),
    ("print('{\"score\": \"high\"}')", "returned a score that is not a number: 'high'. Return {\"score\": float, \"per_item\": [float, ...]} (per_item optional)."),
])
def test_eval_cmd_errors_are_one_line_and_write_nothing(cli_runner, trl_run, tmp_path, body, message):
    command = _eval_script(tmp_path, body)
    out = tmp_path / "out"
    result = cli_runner.invoke(cli, ["extrapolate", str(trl_run), "-o", str(out), "--method", "linear", "--select",
                                     "reward", "--eval-cmd", command, "--eval-timeout", "1"])
    assert result.exit_code == 1 and result.stdout == ""
    err = " ".join(result.stderr.split())
    assert err.startswith(f"Error: --eval-cmd {command!r}") and err.endswith(message) and "Traceback" not in err
    assert not out.exists()


def test_eval_cmd_and_function_scores_reach_the_table(cli_runner, trl_run, tmp_path, monkeypatch):
    """A user's command that scores every candidate alike: nothing beats stay, nothing is written."""
    command = _eval_script(tmp_path, "import json, os, sys\nassert os.path.exists(sys.argv[1] + '/adapter_config.json')\n"
                                     "print(json.dumps({'score': 0.5, 'per_item': [1, 0, 1, 0]}))")
    result = cli_runner.invoke(cli, ["extrapolate", str(trl_run), "-o", str(tmp_path / "out"), "--method", "linear",
                                     "--select", "reward", "--eval-cmd", command, "--horizon", "2", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["jump"] is False and len(payload["candidates"]) == 6  # stay + 5 steps-ahead
    assert [c["ahead_steps"] for c in payload["candidates"][1:]] == [5, 10, 20, 30, 40]  # ¼…2 horizons of 2×10 steps
    assert not (tmp_path / "out").exists() and "no jump beats staying" in result.stderr
    (tmp_path / "my_scores.py").write_text("def score(path):\n    return {'score': 1.0 if path else 0.0}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert FunctionScorer("my_scores:score").score_path(tmp_path).mean == 1.0
    with raises_whole(ScoreError, "--eval 'my_scores' is not of the form package.module:function. "
                                "Example: --eval my_evals.math:score"):
        FunctionScorer("my_scores")
    with raises_whole(ScoreError, "--eval-cmd 'python eval.py' has no {path}. "
                                "Example: --eval-cmd 'python my_eval.py {path}'"):
        CommandScorer("python eval.py")


def test_reward_selection_with_the_real_verifier_rejects_a_harmful_jump(cli_runner, tiny_grpo_run, warm_tiny, tmp_path):
    """The embedded model and verifier: a jump 10× the run's length along the last velocity (lr 3e-3)
    wrecks the model; it is scored, never chosen, and nothing is written."""
    out = tmp_path / "out"
    result = cli_runner.invoke(cli, ["extrapolate", str(tiny_grpo_run), "-o", str(out), "--method", "linear",
                                     "--select", "reward", "--eval-task", "addition", "--eval-size", "200",
                                     "--base", str(warm_tiny), "--ahead", "40", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    stay, jump = payload["candidates"]
    assert stay["method"] == "stay" and jump["ahead_steps"] == 40 and jump["n"] == 200
    assert jump["score"] < stay["score"] - 2 * jump["se"]  # clearly worse on the verifier
    assert payload["jump"] is False and not out.exists()


class TargetStepScorer:
    """Scores a candidate by the step it stands for (and remembers which runs it saw)."""

    name = "target step"

    def __init__(self):
        self.seen = []

    def score(self, candidate) -> Score:
        self.seen.append((candidate.predictor.name, candidate.run.steps[-1], candidate.target_step))
        return Score(candidate.target_step / 1000, [candidate.target_step / 1000] * 2)


def test_backtest_reward_column_scores_each_prediction_of_the_held_out_step(trl_run):
    from nextx.backtesting import backtest

    scorer = TargetStepScorer()
    report = backtest(load_run(trl_run), ["linear", "relex", "stay"], holdout=2, horizon=2, scorer=scorer)
    reward = report.to_dict()["reward"]
    assert reward["step"] == 80 and reward["from_step"] == 60
    assert reward["stay"] == pytest.approx(0.06) and reward["actual"] == pytest.approx(0.08)
    for method in ("linear", "relex"):  # fitted on steps ≤ 60, predicting step 80
        assert reward["methods"][method]["score"] == pytest.approx(0.08)
        assert report.methods[method]["reward"]["delta_vs_stay"] == pytest.approx(0.02)
    assert ("linear", 60, 80.0) in scorer.seen and ("stay", 80, 80.0) in scorer.seen


def test_eval_command_gets_the_path_safely_keeps_only_its_tail_and_dies_whole_on_timeout(tmp_path):
    """$NEXTX_EVAL_PATH for shell templates; 10 MB printed before the score line are not held in memory;
    the timeout kills the command's grandchildren too."""
    import sys
    import time

    script = tmp_path / "eval.py"
    script.write_text("import os, sys\nsys.stdout.write('x' * 10_000_000 + '\\n')\n"
                      "print('{\"score\": %d}' % len(os.environ['NEXTX_EVAL_PATH']))\n")
    odd = tmp_path / "a $(touch pwned) dir"
    scorer = CommandScorer(f"sh -c '{sys.executable} {script} \"$NEXTX_EVAL_PATH\"' {{path}}")
    assert scorer.score_path(odd).mean == len(str(odd)) and not (tmp_path / "pwned").exists()
    pid_file = tmp_path / "grandchild"
    slow = CommandScorer(f"sh -c 'sleep 60 & echo $! > {pid_file}; wait' {{path}}", timeout=1)
    with raises_whole(ScoreError, f"--eval-cmd {slow.template!r} timed out after 1 s. Speed up the evaluation or "
                                  "raise --eval-timeout."):
        slow.score_path(tmp_path)
    grandchild = Path(f"/proc/{int(pid_file.read_text())}/stat")
    time.sleep(0.2)
    assert not grandchild.exists() or grandchild.read_text().split(")")[-1].split()[0] in ("Z", "X")  # dead (a zombie
    # until something reaps it)


@pytest.mark.parametrize(("returned", "message"), [
    ({"score": "0.5"}, "returned a score that is not a number: '0.5'"),
    ({"score": True}, "returned a score that is not a number: 'True'"),
    ({"score": 0.5, "per_item": "101"}, "returned per_item that is not a list of numbers: '101'"),
])
def test_eval_hooks_answers_are_not_coerced(returned, message):
    from nextx.scoring import _score_from

    with raises_whole(ScoreError, f"--eval m:f {message}. Return {{\"score\": float, \"per_item\": [float, ...]}} "
                                  "(per_item optional)."):
        _score_from(returned, "--eval m:f")


def test_a_failing_or_broken_user_evaluation_is_its_error_not_a_nextx_bug(tmp_path, monkeypatch):
    (tmp_path / "broken_eval.py").write_text("def score(path:\n")
    (tmp_path / "raising_eval.py").write_text("VALUE = 3\ndef score(path):\n    raise RuntimeError('no GPU')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ScoreError, match=r"^--eval 'broken_eval:score': importing broken_eval raised SyntaxError: "):
        FunctionScorer("broken_eval:score")
    with raises_whole(ScoreError, "--eval 'raising_eval:VALUE': VALUE is not a function. Name a function taking the "
                                  "adapter's directory."):
        FunctionScorer("raising_eval:VALUE")
    with raises_whole(ScoreError, "--eval raising_eval:score raised RuntimeError: no GPU. Fix the evaluation function "
                                  "(it gets the candidate adapter's directory)."):
        FunctionScorer("raising_eval:score").score_path(tmp_path)


def test_candidate_dirs_of_a_killed_nextx_are_removed_by_the_next_evaluation(tmp_path, monkeypatch):
    import subprocess
    import tempfile

    from nextx.scoring import remove_stale_candidates

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    stale, mine = tmp_path / f"nextx-candidate-{dead}-abc", tmp_path / f"nextx-candidate-{os.getpid()}-xyz"
    for folder in (stale, mine):
        (folder / "adapter").mkdir(parents=True)
    remove_stale_candidates()
    assert not stale.exists() and mine.exists()
