"""`nextx inspect`: table, JSON schema, plot, help examples."""

import json

import pytest
import torch

from nextx.cli.main import cli


def test_inspect_json_schema(cli_runner, trl_run):
    result = cli_runner.invoke(cli, ["inspect", str(trl_run), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["layout"] == "trl"
    assert report["steps"] == [10, 20, 30, 40, 50, 60, 70, 80]
    assert len(report["modules"]) == 14
    module = next(m for m in report["modules"] if m["name"] == "model.layers.0.self_attn.k_proj")
    assert module["shape"] == [16, 32] and module["rank"] == 4
    assert len(module["sigma"]) == len(module["energy"]) == 8
    assert all(b > a for a, b in zip(module["sigma"], module["sigma"][1:], strict=False))  # growing updates
    assert -1 <= module["r2"] <= 1


def test_inspect_table_goes_to_stderr(cli_runner, trl_run):
    result = cli_runner.invoke(cli, ["inspect", str(trl_run), "--modules", "all"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "model.layers.1.mlp.down_proj" in result.stderr
    assert "r=4 alpha=8.0" in result.stderr


def test_inspect_plot(cli_runner, trl_run, tmp_path):
    png = tmp_path / "traj.png"
    result = cli_runner.invoke(cli, ["inspect", str(trl_run), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_help_has_examples(cli_runner):
    for args in (["--help"], ["inspect", "--help"]):
        result = cli_runner.invoke(cli, args)
        assert result.exit_code == 0 and "Examples:" in result.output


def test_cli_docs_match_help():
    from pathlib import Path

    from nextx.cli.docs import cli_markdown

    docs = Path(__file__).parent.parent / "docs" / "cli.md"
    assert docs.read_text() == cli_markdown(), "docs/cli.md is stale: python -m nextx.cli.docs > docs/cli.md"


def test_import_nextx_stays_light():
    import subprocess
    import sys

    code = "import sys, nextx; print(sorted(m for m in ('transformers', 'peft', 'trl', 'huggingface_hub') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ctrl_c_during_start_up_exits_quietly():
    """The console script handles Ctrl-C before its heavy imports: exit 130, one line, no traceback."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "nextx.cli.entry", "--help"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(0.4)  # the handler is in place within ~0.1 s; importing torch takes longer
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0 and "Usage" in out:
        pytest.skip("start-up finished before the signal arrived")
    assert (proc.returncode, out, err) == (130, "", "Interrupted.\n")


def test_import_nextx_is_lazy_and_exports_the_api():
    import subprocess
    import sys

    code = ("import sys, nextx; light = 'torch' not in sys.modules; from nextx import fit, load_run, choose_jump; "
            "print(light, fit.__module__, sorted(nextx.__all__) == sorted(set(dir(nextx)) & set(nextx.__all__)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "nextx.fitting", "True"]


def test_progress_off_a_terminal_is_plain_lines_per_stage(cli_runner, trl_run, monkeypatch, tmp_path):
    """Not a terminal (CliRunner, logs): plain lines, one stage each — trajectories, NExt's training
    epochs (no longer a frozen bar), the scoring — at most every NEXTX_PROGRESS_EVERY seconds."""
    monkeypatch.setenv("NEXTX_PROGRESS_EVERY", "0")
    result = cli_runner.invoke(cli, ["backtest", str(trl_run), "--methods", "next,linear", "--holdout", "2",
                                     "--horizon", "2", "--epochs", "3", "--json"])
    assert result.exit_code == 0, result.output
    lines = [line.rsplit(", ", 1)[0] for line in result.stderr.splitlines()]  # without the seconds
    assert {"rank-1 trajectories: 14/14", "training next: 3/3", "scoring: 14/14"} <= set(lines)
    assert lines.index("rank-1 trajectories: 14/14") < lines.index("training next: 1/3") < lines.index("scoring: 1/14")
    assert json.loads(result.stdout)["best"]
    auto = cli_runner.invoke(cli, ["extrapolate", str(trl_run), "-o", str(tmp_path / "auto"), "--method", "auto",
                                   "--ahead", "auto", "--horizon", "2", "--epochs", "3", "--json"])
    assert auto.exit_code == 0, auto.output  # --method auto's backtest shows its stages too
    assert {"training next: 3/3", "scoring: 14/14"} <= {line.rsplit(", ", 1)[0] for line in auto.stderr.splitlines()}
    monkeypatch.delenv("NEXTX_PROGRESS_EVERY")
    quiet = cli_runner.invoke(cli, ["backtest", str(trl_run), "--methods", "linear", "--holdout", "2", "--json"])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_inspect_device_unknown_or_absent_is_one_line(cli_runner, trl_run):
    cases = [("gpu0", "Error: unknown device 'gpu0'. Choose auto, cpu, cuda, cuda:N or mps.")]
    if not torch.cuda.is_available():
        cases.append(("cuda", "Error: device cuda is not available here (no CUDA). Use --device cpu or auto."))
    for device, line in cases:
        result = cli_runner.invoke(cli, ["inspect", str(trl_run), "--device", device])
        assert result.exit_code == 1 and result.stderr.strip().splitlines()[-1] == line and result.stdout == ""
    result = cli_runner.invoke(cli, ["inspect", str(trl_run), "--device", "auto", "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)["modules"]) == 14
