"""Hub I/O through the real huggingface_hub client against a local server on 127.0.0.1."""

import json

import pytest
from helpers import raises_whole
from hub_server import TOKEN, HubState, start_server

from nextx import load_run
from nextx.cli.main import cli
from nextx.io.hub import parse_hub_url
from nextx.io.pull import pull

NEEDED = ("adapter_model.safetensors", "adapter_config.json", "trainer_state.json")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    state = HubState()
    server, url = start_server(state)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read at import; nextx reads the env per call
    yield state
    server.shutdown()


def _files(checkpoint_dir, prefix=""):
    files = {f"{prefix}{name}": (checkpoint_dir / name).read_bytes() for name in NEEDED if (checkpoint_dir / name).exists()}
    files[f"{prefix}optimizer.pt"] = b"pickled optimizer state: never downloaded"
    return files


def _folders_repo(state, trl_run, repo="org/grpo"):
    files = {}
    for ckpt in sorted(trl_run.iterdir()):
        files.update(_files(ckpt, f"{ckpt.name}/"))
    return state.commit(repo, files, "all checkpoints")


def test_parse_hub_url():
    assert parse_hub_url("hf://org/run@v2/runs/a") .__dict__ == {"repo": "org/run", "revision": "v2", "subdir": "runs/a"}
    assert parse_hub_url("hf://org/run").revision is None


def test_folders_layout_every_command_reads_it_and_skips_pickles(hub, trl_run, cli_runner, tmp_path):
    _folders_repo(hub, trl_run)
    run = load_run("hf://org/grpo")
    assert run.steps == [10, 20, 30, 40, 50, 60, 70, 80] and len(run.modules) == 14
    assert not any(name.endswith(".pt") for name in hub.downloads)
    count = len(hub.downloads)
    result = cli_runner.invoke(cli, ["inspect", "hf://org/grpo", "--json"])  # warm cache: no new download
    assert result.exit_code == 0, result.output
    assert len(hub.downloads) == count
    out = tmp_path / "pulled"
    result = cli_runner.invoke(cli, ["pull", "org/grpo", "-o", str(out)])
    assert result.exit_code == 0 and result.stdout.strip() == str(out)
    assert load_run(out).steps == run.steps and not list(out.rglob("optimizer.pt"))
    assert json.loads((out / "nextx-source.json").read_text())["source"] == "hf://org/grpo"


def test_revision_and_subdir(hub, trl_run):
    old = _folders_repo(hub, trl_run)
    hub.commit("org/grpo", {"runs/b/checkpoint-5/" + k: v for k, v in _files(trl_run / "checkpoint-10").items()} |
               {"runs/b/checkpoint-9/" + k: v for k, v in _files(trl_run / "checkpoint-20").items()}, "more", replace=True)
    assert load_run("hf://org/grpo/runs/b").steps == [10, 20]  # trainer_state.json steps win
    assert load_run(f"hf://org/grpo@{old}").steps[-1] == 80


def test_branch_per_step(hub, trl_run):
    for step in (10, 30, 50):
        hub.commit("org/relex", _files(trl_run / f"checkpoint-{step}"), f"step {step}", branch=f"step_{step}")
    hub.commit("org/relex", {"README.md": b"run"}, "readme")  # main has no checkpoint
    run = load_run("hf://org/relex")
    assert run.layout == "hub" and run.steps == [10, 30, 50]


def test_commit_per_save(hub, trl_run):
    for step in (10, 20, 40):
        hub.commit("org/every-save", _files(trl_run / f"checkpoint-{step}"), f"Training in progress, step {step}")
    run = load_run("hf://org/every-save")
    assert run.steps == [10, 20, 40]
    name = "model.layers.0.self_attn.q_proj"
    assert run.deltas(name).spectrum({2: 1.0}).sigma == pytest.approx(
        load_run(trl_run).deltas(name).spectrum({3: 1.0}).sigma, rel=1e-12)  # step 40 is the right commit


def test_repo_per_step(hub, trl_run, tmp_path):
    for step in (10, 20, 30):
        hub.commit(f"org/run-step-{step}", _files(trl_run / f"checkpoint-{step}"), "upload")
    out = pull("ignored", tmp_path / "out", repo_template="org/run-step-{step}", steps=[10, 20, 30])
    assert load_run(out).steps == [10, 20, 30]


def test_offline_from_a_warm_cache(hub, trl_run, monkeypatch, cli_runner):
    _folders_repo(hub, trl_run)
    load_run("hf://org/grpo")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert load_run("hf://org/grpo").steps[-1] == 80


def _hub_fails(cli_runner, args, *fragments):
    result = cli_runner.invoke(cli, args)
    assert result.exit_code == 1, result.output
    err = " ".join(result.stderr.split())  # download progress bars may come first
    assert err.count("Error:") == 1 and "Traceback" not in err
    err = err[err.index("Error:"):]
    for fragment in fragments:
        assert fragment in err, err
    assert TOKEN not in result.output
    return err


def test_hub_errors(hub, trl_run, cli_runner, monkeypatch, tmp_path):
    _folders_repo(hub, trl_run)
    _hub_fails(cli_runner, ["inspect", "hf://org/missing"], "repository org/missing not found")
    _hub_fails(cli_runner, ["inspect", "hf://org/grpo@nope"], "revision 'nope' not found")
    hub.commit("org/empty", {"README.md": b"nothing"}, "init")
    _hub_fails(cli_runner, ["inspect", "hf://org/empty"], "has no checkpoints", "step_N")
    # "no checkpoints" has three causes, each told apart: a SUBDIR that is not there, folders that are not
    # a readable run, and offline (the step branches and commits could not be listed)
    _hub_fails(cli_runner, ["inspect", "hf://org/grpo/runs/nope"], "org/grpo has no folder 'runs/nope'")
    hub.commit("org/plain", {"config.json": b"{}"}, "a file nextx downloads, no checkpoint")
    _hub_fails(cli_runner, ["inspect", "hf://org/plain"], "repository org/plain has no checkpoints", "step_N")
    hub.commit("org/broken", {"checkpoint-10/trainer_state.json": b'{"global_step": 10}'}, "half an upload")
    _hub_fails(cli_runner, ["inspect", "hf://org/broken"], "repository org/broken has checkpoint folders, but they are "
               "not a run nextx can read: checkpoint has neither adapter_config.json nor model.safetensors")
    hub.repos["org/grpo"].gated = True
    _hub_fails(cli_runner, ["inspect", "hf://org/grpo@main/checkpoint-10"], "restricted", "HF_TOKEN")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert cli_runner.invoke(cli, ["inspect", "hf://org/grpo", "--json"]).exit_code == 0
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _hub_fails(cli_runner, ["pull", "org/other", "-o", str(tmp_path / "x")], "not in the local cache", "offline")
    assert not (tmp_path / "x").exists()
    _hub_fails(cli_runner, ["inspect", "hf://org/plain"], "repository org/plain has no checkpoint-N folders in the "
               "local cache, and offline (HF_HUB_OFFLINE) its step branches and commits cannot be listed")


def test_interrupted_download_resumes(hub, trl_run, cli_runner, tmp_path):
    _folders_repo(hub, trl_run)
    hub.fail_file["checkpoint-50/adapter_model.safetensors"] = 100  # fails until the test lets it through
    _hub_fails(cli_runner, ["pull", "org/grpo", "-o", str(tmp_path / "out")], "org/grpo", "Re-run")
    assert not (tmp_path / "out").exists()
    done = set(hub.downloads)
    hub.fail_file.clear()
    assert cli_runner.invoke(cli, ["pull", "org/grpo", "-o", str(tmp_path / "out")]).exit_code == 0
    again = hub.downloads[len(done):] if len(hub.downloads) > len(done) else []
    assert "checkpoint-50/adapter_model.safetensors" in again
    assert not set(again) & (done - {"checkpoint-50/adapter_model.safetensors"})  # completed files not re-downloaded


def test_push_to_hub(hub, trl_run, cli_runner, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = tmp_path / "out"
    result = cli_runner.invoke(cli, ["extrapolate", str(trl_run), "-o", str(out), "--method", "linear", "--coef", "1",
                                     "--push-to-hub", "me/jumped", "--private", "--json"])
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    assert json.loads(result.stdout)["hub_url"].endswith("/me/jumped")
    files = hub.resolve("me/jumped", "main").files
    assert {"adapter_model.safetensors", "adapter_config.json", "nextx.json", "README.md"} <= set(files)
    assert files["adapter_model.safetensors"] == (out / "adapter_model.safetensors").read_bytes()


def test_pull_takes_only_allow_listed_files_from_a_warm_cache(hub, trl_run, cli_runner, tmp_path, monkeypatch):
    """A cache that already holds a full snapshot (pickles too, e.g. from another tool's download):
    `nextx pull` lays out only what nextx reads, hard-linked to the cache's blobs (no second copy)."""
    from huggingface_hub import snapshot_download

    _folders_repo(hub, trl_run)
    import os

    snapshot_download("org/grpo", cache_dir=str(tmp_path / "hf-cache"),  # everything, optimizer.pt included
                      endpoint=os.environ["HF_ENDPOINT"])
    assert list((tmp_path / "hf-cache").rglob("optimizer.pt"))
    out = tmp_path / "pulled"
    assert cli_runner.invoke(cli, ["pull", "org/grpo", "-o", str(out)]).exit_code == 0
    assert not list(out.rglob("*.pt")) and load_run(out).steps == [10, 20, 30, 40, 50, 60, 70, 80]
    weights = out / "checkpoint-10" / "adapter_model.safetensors"
    assert weights.stat().st_nlink >= 2  # a link to the cached blob, not a copy


def test_parse_hub_url_refuses_paths_leaving_the_repo():
    from nextx.errors import RunLayoutError

    for url in ("hf://org/run/../x", "hf://org/run//etc", "hf://org/run/a/./b"):
        with raises_whole(RunLayoutError, f"{url!r}: SUBDIR must be a path inside the repository (no '..', '.' or leading '/')."):
            parse_hub_url(url)
    for url in ("hf://org/run@..", "hf://org/run@..%2F..%2Fetc", "hf://org/run@%2Fetc"):
        with raises_whole(RunLayoutError, f"{url!r}: REVISION must be a branch, tag or commit (no '..', no leading '/')."):
            parse_hub_url(url)


def test_pull_never_links_what_a_tampered_cache_points_outside_its_blobs(hub, trl_run, cli_runner, tmp_path):
    """An allow-listed name in the cached snapshot pointing at any other file (say ~/.ssh/id_rsa) is refused:
    linking it would make the pulled run share that file's inode."""
    from huggingface_hub import snapshot_download

    _folders_repo(hub, trl_run)
    import os

    cache = tmp_path / "hf-cache"
    snapshot_download("org/grpo", cache_dir=str(cache), endpoint=os.environ["HF_ENDPOINT"])
    secret = tmp_path / "secret"
    secret.write_text("private")
    planted = next(cache.rglob("checkpoint-10/adapter_config.json"))
    planted.unlink()
    planted.symlink_to(secret)
    out = tmp_path / "pulled"
    relative = "checkpoint-10/adapter_config.json"
    _hub_fails(cli_runner, ["pull", "org/grpo", "-o", str(out)],
               f"the cached snapshot's {relative} points outside the cache's blobs ({secret})")
    assert not out.exists() and secret.stat().st_nlink == 1


def test_push_to_a_branch_and_as_a_pull_request(hub, trl_run, cli_runner, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    args = ["extrapolate", str(trl_run), "--method", "linear", "--ahead", "10", "--push-to-hub", "me/jumped", "--json"]
    result = cli_runner.invoke(cli, [*args, "-o", str(tmp_path / "a"), "--revision", "jump-80",
                                     "--commit-message", "NExt jump at step 80"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hub_url"].endswith("/me/jumped/tree/jump-80")
    commit = hub.resolve("me/jumped", "jump-80")
    assert commit.title == "NExt jump at step 80" and "adapter_model.safetensors" in commit.files
    assert "adapter_model.safetensors" not in hub.resolve("me/jumped", "main").files  # main untouched
    result = cli_runner.invoke(cli, [*args, "-o", str(tmp_path / "b"), "--create-pr"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hub_url"].endswith("/me/jumped/discussions/1")
    assert "adapter_model.safetensors" in hub.resolve("me/jumped", "refs/pr/1").files
    card = (tmp_path / "b" / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: peft" in card and "nextx" in card


def test_base_model_from_the_hub(hub, trl_run, base_model, cli_runner, tmp_path):
    """--base accepts hf://OWNER/REPO[@REV] and a bare Hub id; the base's pickles are never fetched;
    merged weights equal those written from the local base byte for byte."""
    files = {p.name: p.read_bytes() for p in base_model.iterdir() if p.is_file()}
    hub.commit("org/base", {**files, "pytorch_model.bin": b"pickled weights: never downloaded"}, "base")
    args = ["extrapolate", str(trl_run), "--method", "linear", "--ahead", "10", "--format", "merged"]
    outputs = {}
    for name, base in (("local", str(base_model)), ("url", "hf://org/base@main"), ("id", "org/base")):
        outputs[name] = tmp_path / name
        result = cli_runner.invoke(cli, [*args, "-o", str(outputs[name]), "--base", base])
        assert result.exit_code == 0, result.output
    weights = {name: (out / "model.safetensors").read_bytes() for name, out in outputs.items()}
    assert weights["url"] == weights["id"] == weights["local"]
    cached = {p.name for p in (tmp_path / "hf-cache").rglob("*") if p.is_file()}
    assert "model.safetensors" in cached and "pytorch_model.bin" not in cached


def test_parse_hub_url_revisions_with_slashes():
    """Pull-request and convert refs, written as the Hub names them or percent-encoded."""
    assert parse_hub_url("hf://org/run@refs/pr/3/runs/a").__dict__ == {"repo": "org/run", "revision": "refs/pr/3",
                                                                       "subdir": "runs/a"}
    assert parse_hub_url("hf://org/run@refs%2Fpr%2F3").revision == "refs/pr/3"
    assert parse_hub_url("hf://org/run@feature%2Fx/sub").__dict__ == {"repo": "org/run", "revision": "feature/x",
                                                                      "subdir": "sub"}
    assert parse_hub_url("hf://org/run@refs/convert/parquet").revision == "refs/convert/parquet"
