"""Bad input, table-driven: each case is exit 1 (2 for usage), the whole one-line message, nothing on
stdout, no output written and the input run byte-identical afterwards."""

import importlib.util
import json
import os
import shutil

import pytest
from helpers import make_lora_run

from nextx.cli.main import cli


def _configs(run, edit):
    for path in run.glob("checkpoint-*/adapter_config.json"):
        config = json.loads(path.read_text())
        result = edit(config)
        path.write_text(json.dumps(config if result is None else result))


def _replace_config(run, make):
    for path in run.glob("checkpoint-*/adapter_config.json"):
        path.unlink()
        make(path)


def _state(run, text):
    for directory in run.glob("checkpoint-*"):
        (directory / "trainer_state.json").write_text(text)


X = ["extrapolate", "{run}", "-o", "{out}", "--method", "linear", "--ahead", "10"]
MERGED = [*X, "--format", "merged", "--base", "{base}"]
PULL_STEPS = ["pull", "org/run", "-o", "{out}", "--repo-template", "org/run-{{step}}", "--steps"]
CASES = {  # name: (prepare(run, tmp) or None, argv, exit code, whole stderr after "Error: ")
    "config is a list": (lambda r, t: _configs(r, lambda c: [1, 2]), ["inspect", "{run}"], 1,
                         "adapter_config.json is not a JSON object ({run}/checkpoint-10/adapter_config.json). "
                         "Write the adapter with PEFT's save_pretrained."),
    "config alpha abc": (lambda r, t: _configs(r, lambda c: c.update(lora_alpha="abc")), ["inspect", "{run}"], 1,
                         "adapter_config.json has lora_alpha = 'abc', not a number "
                         "({run}/checkpoint-10/adapter_config.json). Set \"lora_alpha\" to the value used in training."),
    "config r four": (lambda r, t: _configs(r, lambda c: c.update(r="four")), ["inspect", "{run}"], 1,
                      "adapter_config.json has r = 'four', not a positive integer "
                      "({run}/checkpoint-10/adapter_config.json). Set \"r\" to the LoRA rank the adapter was trained with."),
    "config r float": (lambda r, t: _configs(r, lambda c: c.update(r=4.0)), ["inspect", "{run}"], 1,
                       "adapter_config.json has r = 4.0, not a positive integer "
                       "({run}/checkpoint-10/adapter_config.json). Set \"r\" to the LoRA rank the adapter was trained with."),
    "negative alpha": (lambda r, t: _configs(r, lambda c: c.update(lora_alpha=-8)), ["inspect", "{run}"], 1,
                       "adapter_config.json has a negative lora_alpha (-8) ({run}/checkpoint-10/adapter_config.json). "
                       "Pass the alpha used in training with --lora-alpha."),
    "bad rank_pattern regex": (lambda r, t: _configs(r, lambda c: c.update(rank_pattern={"(": 2})), ["inspect", "{run}"],
                               1, "adapter_config.json rank_pattern has an invalid pattern '(': missing ), unterminated "
                                  "subpattern at position 0 ({run}/checkpoint-10/adapter_config.json). Use PEFT's "
                                  "module-name patterns (regular expressions)."),
    "config is a directory": (lambda r, t: _replace_config(r, lambda p: p.mkdir()), ["inspect", "{run}"], 1,
                              "adapter_config.json is not a regular file ({run}/checkpoint-10/adapter_config.json). "
                              "Point it at the JSON file itself."),
    "config is /dev/zero": (lambda r, t: _replace_config(r, lambda p: p.symlink_to("/dev/zero")), ["inspect", "{run}"], 1,
                            "adapter_config.json is not a regular file ({run}/checkpoint-10/adapter_config.json). "
                            "Point it at the JSON file itself."),
    "config is a FIFO": (lambda r, t: _replace_config(r, lambda p: os.mkfifo(p)), ["inspect", "{run}"], 1,
                         "adapter_config.json is not a regular file ({run}/checkpoint-10/adapter_config.json). "
                         "Point it at the JSON file itself."),
    "config not JSON": (lambda r, t: _replace_config(r, lambda p: p.write_text("{r: 4")), ["inspect", "{run}"], 1,
                        "adapter_config.json is not valid JSON: Expecting property name enclosed in double quotes "
                        "({run}/checkpoint-10/adapter_config.json)."),
    "step 2e23": (None, ["inspect", "--checkpoint", "200000000000000000000000={run}/checkpoint-10",
                         "--checkpoint", "20={run}/checkpoint-20"], 1,
                  "step 200000000000000000000000 of {run}/checkpoint-10 is not a plausible training step. "
                  "Steps are 0…1,000,000,000; give the real step with --checkpoint STEP=PATH."),
    "duplicate steps": (None, ["inspect", "--checkpoint", "10={run}/checkpoint-10", "--checkpoint",
                               "10={run}/checkpoint-20"], 1,
                        "duplicate step 10: {run}/checkpoint-10 and {run}/checkpoint-20. Remove one of them, or list the "
                        "checkpoints with --checkpoint STEP=PATH."),
    "shard size 5X": (None, [*MERGED, "--shard-size", "5X"], 1,
                      "--shard-size '5X' is not a size. Use e.g. 5GB, 500MB, 2GiB or a number of bytes."),
    "shard size ABC": (None, [*MERGED, "--shard-size", "ABC"], 1,
                       "--shard-size 'ABC' is not a size. Use e.g. 5GB, 500MB, 2GiB or a number of bytes."),
    "shard size nan": (None, [*MERGED, "--shard-size", "nan"], 1,
                       "--shard-size 'nan' is not a size. Use e.g. 5GB, 500MB, 2GiB or a number of bytes."),
    "shard size 0": (None, [*MERGED, "--shard-size", "0"], 1,
                     "--shard-size '0' is not a size. Use e.g. 5GB, 500MB, 2GiB or a number of bytes."),
    "shard size negative": (None, [*MERGED, "--shard-size", "-5MB"], 1,
                            "--shard-size '-5MB' is not a size. Use e.g. 5GB, 500MB, 2GiB or a number of bytes."),
    "merged without base": (lambda r, t: _configs(r, lambda c: c.update(base_model_name_or_path=str(t / "gone"))),
                            [*X, "--format", "merged"], 1,
                            "merged output needs the base model W₀. Pass --base PATH or a Hub id (the adapter names no base nextx "
                            "can find)."),
    "output parent is a file": (lambda r, t: (t / "afile").write_text("x"),
                                ["extrapolate", "{run}", "-o", "{tmp}/afile/out", "--method", "linear", "--ahead", "10"], 1,
                                "cannot create the output's parent directory: File exists ({tmp}/afile). Choose an -o "
                                "whose parent is (or can be) a writable directory."),
    "predictor without horizon": (lambda r, t: ((t / "pred").mkdir(), (t / "pred" / "predictor.json").write_text(
        json.dumps({"method": "linear"}))), ["extrapolate", "{run}", "-o", "{out}", "--predictor", "{tmp}/pred",
                                             "--ahead", "10"], 1,
        "predictor.json has horizon = None, not a positive integer ({tmp}/pred). Refit it with: nextx fit RUN -o DIR"),
    "predictor.json is a list": (lambda r, t: ((t / "pred").mkdir(), (t / "pred" / "predictor.json").write_text("[]")),
                                 ["extrapolate", "{run}", "-o", "{out}", "--predictor", "{tmp}/pred", "--ahead", "10"], 1,
                                 "unknown predictor method None ({tmp}/pred)."),
    "ahead not a number": (None, ["extrapolate", "{run}", "-o", "{out}", "--ahead", "far"], 2,
                           "Invalid value for --ahead: 'far' is neither a number nor 'auto'"),
    "empty methods": (None, ["backtest", "{run}", "--methods", ",", "--holdout", "1"], 2,
                      "Invalid value for --methods: name at least one method (e.g. next,linear,stay)"),
    "unknown method": (None, ["backtest", "{run}", "--methods", "magic", "--holdout", "1"], 1,
                       "unknown method 'magic'. Choose from: next, relex, linear, trend, rre, stay."),
    "plot exists": (lambda r, t: (t / "p.png").write_text("mine"),
                    ["backtest", "{run}", "--holdout", "1", "--methods", "linear", "--plot", "{tmp}/p.png"], 1,
                    "the plot file already exists ({tmp}/p.png). Remove it or choose another --plot."),
    "select reward without eval": (None, [*X, "--select", "reward"], 2,
                                   "--select reward needs --eval-task, --eval or --eval-cmd"),
    "two evaluations": (None, [*X, "--select", "reward", "--eval", "a:b", "--eval-cmd", "x {path}"], 2,
                        "give one of --eval-task, --eval and --eval-cmd"),
    "eval timeout nan": (None, [*X, "--select", "reward", "--eval-cmd", "x {path}", "--eval-timeout", "nan"], 2,
                         "Invalid value for '--eval-timeout': nan is not a number of seconds ≥ 1"),
    "eval timeout inf": (None, [*X, "--select", "reward", "--eval-cmd", "x {path}", "--eval-timeout", "inf"], 2,
                         "Invalid value for '--eval-timeout': inf is not a number of seconds ≥ 1"),
    **{f"pull repo id {bad[:12]}": (None, ["pull", "-o", "{out}", "--", bad], 1,
                                    f"repository id {bad!r} is not a Hub repository id. Use OWNER/NAME: letters, digits, "
                                    "'-', '_' and '.', at most 96 characters.")
       for bad in ("../../etc", "ünï/run", "org/a run", "org/" + "x" * 93, "-org/run")},
    "push to an invalid repo": (None, [*X, "--push-to-hub", "org/a b"], 1,
                                "--push-to-hub 'org/a b' is not a Hub repository id. Use OWNER/NAME: letters, digits, "
                                "'-', '_' and '.', at most 96 characters."),
    "repo template field": (None, ["pull", "org/run", "-o", "{out}", "--repo-template", "org/run-{{foo}}", "--steps",
                                   "10,20"], 1, "--repo-template 'org/run-{{foo}}' may hold only {{step}}. Example: "
                                                "--repo-template 'org/run-step{{step}}'"),
    "lora alpha 0": (None, ["inspect", "{run}", "--lora-alpha", "0"], 2,
                     "Invalid value for '--lora-alpha': 0.0 is not a positive lora_alpha"),
    "lora alpha nan": (None, ["inspect", "{run}", "--lora-alpha", "nan"], 2,
                       "Invalid value for '--lora-alpha': nan is not a positive lora_alpha"),
    "run beside checkpoint": (None, ["inspect", "{run}", "--checkpoint", "10={run}/checkpoint-10"], 2,
                              "give a RUN directory or --checkpoint STEP=PATH, not both"),
    "one directory two steps": (None, ["inspect", "--checkpoint", "10={run}/checkpoint-10", "--checkpoint",
                                       "20={run}/checkpoint-10"], 1,
                                "steps 10 and 20 name the same directory ({run}/checkpoint-10). Give each --checkpoint "
                                "its own directory."),
    "eval-cmd unbalanced quote": (None, [*X, "--select", "reward", "--eval-cmd", "python 'e.py {path}"], 1,
                                  "--eval-cmd \"python 'e.py {path}\" cannot be split into words: No closing "
                                  "quotation. Balance its quotes, e.g. --eval-cmd 'python my_eval.py {path}'"),
    "eval-cmd path alone": (None, [*X, "--select", "reward", "--eval-cmd", "{path}"], 1,
                            "--eval-cmd '{path}' names no command before {path}. Example: --eval-cmd 'python "
                            "my_eval.py {path}'"),
    **{f"pull steps {spec}": (None, [*PULL_STEPS, spec], 1, f"--steps {spec!r} {reason}. Use START:STOP:EVERY (e.g. "
                                                             "10:150:10) or a comma-separated list of steps.")
       for spec, reason in (("10:x", "is not a list of steps"), ("10:50:0", "is not a list of steps"),
                            ("0:1000000000:1", "lists more than 10,000 steps"))},
    "eval not module:function": (None, [*X, "--select", "reward", "--eval", "my_eval"], 1,
                                 "--eval 'my_eval' is not of the form package.module:function. Example: --eval "
                                 "my_evals.math:score"),
    "eval module missing": (None, [*X, "--select", "reward", "--eval", "no_such_module_x:f"], 1,
                            "--eval 'no_such_module_x:f': cannot import no_such_module_x (No module named "
                            "'no_such_module_x'). Install the module or put it on PYTHONPATH."),
    "eval-cmd without {path}": (None, [*X, "--select", "reward", "--eval-cmd", "python e.py"], 1,
                                "--eval-cmd 'python e.py' has no {path}. Example: --eval-cmd 'python my_eval.py {path}'"),
    "eval-cmd not found": (None, [*X, "--select", "reward", "--eval-cmd", "no-such-binary-x {path}"], 1,
                           "--eval-cmd 'no-such-binary-x {path}': command not found: no-such-binary-x."),
    "init-adapter not an adapter": (None, ["train", "-o", "{out}", "--steps", "1", "--init-adapter", "{tmp}"], 1,
                                    "--init-adapter is not a PEFT adapter directory (no adapter_config.json) ({tmp}). "
                                    "Pass a directory written by nextx extrapolate or PEFT."),
    "train next-at off the grid": (None, ["train", "-o", "{out}", "--steps", "10", "--save-every", "4", "--next-at", "6"],
                                   1, "--next-at 6 is not a multiple of --save-every 4. NExt jumps right after a "
                                      "checkpoint is saved."),
    "train next-every off the grid": (None, ["train", "-o", "{out}", "--steps", "20", "--save-every", "4", "--next-at",
                                             "8", "--next-every", "6"],
                                      1, "--next-every 6 is not a multiple of --save-every 4. Jumps come right after a "
                                         "checkpoint is saved."),
    "demo unknown arm": (None, ["demo", "-o", "{out}", "--arms", "magic"], 2,
                         "Invalid value for --arms: unknown arm 'magic' (choose from next, relex, linear, trend, "
                         "next-offset, next-merge, trend-offset, rre-offset, next-every, trend-every, trend-fast, "
                         "trend-fast-verified, next-fast, reward, reward-offset, lookahead, sfpo, sfpo-trend-fast)"),
    "demo seeds not integers": (None, ["demo", "-o", "{out}", "--seeds", "a,b"], 2,
                                "Invalid value for --seeds: 'a,b' is not a comma-separated list of integers"),
    "cap negative": (None, [*X, "--cap", "-1"], 2,
                     "Invalid value for '--cap': -1.0 is not in the range x>=0."),
}


if importlib.util.find_spec("math_verify") is None:
    CASES["verifier math without math-verify"] = (None, ["train", "-o", "{out}", "--steps", "1", "--verifier", "math"], 1,
                                                  "--verifier math needs the math-verify package. pip install math-verify")


@pytest.fixture(scope="module")
def table_run(tmp_path_factory, base_model):
    return make_lora_run(tmp_path_factory.mktemp("table") / "run", base_model, [10, 20, 30, 40])


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, cli_runner, table_run, base_model, tmp_path):
    prepare, argv, code, message = CASES[name]
    run = tmp_path / "run"
    shutil.copytree(table_run, run, symlinks=True)
    if prepare:
        prepare(run, tmp_path)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and not p.is_symlink()}
    subs = {"run": str(run), "out": str(tmp_path / "out"), "base": str(base_model), "tmp": str(tmp_path)}
    result = cli_runner.invoke(cli, [a.format(**subs) if "{path}" not in a else a for a in argv])
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    err = " ".join(result.stderr.split())
    expected = "Error: " + message.format(**subs) if "{path}" not in message else "Error: " + message.replace(
        "{run}", subs["run"]).replace("{tmp}", subs["tmp"])
    if code == 1:
        assert err == expected
    else:
        assert err.endswith(expected) and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and not p.is_symlink()} == before
