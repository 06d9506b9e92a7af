"""Runs on the Hugging Face Hub: resolve ``hf://OWNER/REPO[@REVISION][/SUBDIR]``, pull, push.

Layouts a run takes on the Hub (``layout=``):

- ``folders``   checkpoint-N/ (or any nextx layout) subfolders of one commit (TRL all_checkpoints)
- ``branches``  one branch per step: ``step_N`` (as RELEX publishes)
- ``commits``   one commit per save: "Training in progress, step N" (TRL every_save)
- ``repos``     one repo per step: ``repo_template`` with ``{step}``, for the given ``steps``

Only what nextx reads is downloaded (adapter/model safetensors, configs, trainer_state.json,
index files) — never optimizer states or pickles. Downloads go through huggingface_hub's cache, so a
second run downloads nothing and ``HF_HUB_OFFLINE=1`` works from a warm cache. HF_ENDPOINT,
HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE and HF_TOKEN are read when a call is made. The token is never
printed.
"""

from __future__ import annotations

import contextlib
import os
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nextx.errors import HubError, NoCheckpointsError, RunLayoutError
from nextx.io.discover import discover_checkpoints

HF_PREFIX = "hf://"
ALLOW_PATTERNS = [
    "*adapter_model.safetensors", "*adapter_config.json", "*trainer_state.json", "*lora_train_meta.json",
    "*model*.safetensors", "*model.safetensors.index.json", "*config.json", "*generation_config.json",
    "*tokenizer.json", "*tokenizer_config.json", "*special_tokens_map.json", "*tokenizer.model", "*vocab.json",
    "*merges.txt", "*chat_template.jinja", "*nextx_base_offset.safetensors",
]
COMMIT_TITLE = re.compile(r"Training in progress,? (?:step|epoch) (\d+)", re.IGNORECASE)
STEP_BRANCH = re.compile(r"^(?:step[_-]?|checkpoint-)(\d+)$")
HUB_LAYOUTS = ("auto", "folders", "branches", "commits", "repos")


@dataclass(frozen=True)
class HubSource:
    repo: str
    revision: str | None = None
    subdir: str | None = None


def is_hub_url(source: str | os.PathLike | None) -> bool:
    return isinstance(source, str) and source.startswith(HF_PREFIX)


def parse_hub_url(url: str) -> HubSource:
    """hf://owner/repo[@revision][/sub/dir] → HubSource. A revision with "/" is written percent-encoded
    (``@refs%2Fpr%2F3``, as huggingface_hub's HfFileSystem does) or as ``@refs/pr/N`` / ``@refs/convert/NAME``."""
    match = re.fullmatch(r"hf://([^/@]+/[^/@]+)(?:@(refs/(?:pr|convert)/[^/]+|[^/]+))?(?:/(.+))?", url.rstrip("/"))
    if not match:
        raise RunLayoutError(f"{url!r} is not hf://OWNER/REPO[@REVISION][/SUBDIR]")
    subdir = match[3]
    if subdir is not None and (subdir.startswith("/") or any(part in ("..", ".") for part in subdir.split("/"))):
        raise RunLayoutError(f"{url!r}: SUBDIR must be a path inside the repository (no '..', '.' or leading '/')")
    check_repo_id(match[1])
    revision = urllib.parse.unquote(match[2]) if match[2] else None
    if revision is not None and (".." in revision or revision.startswith("/") or not revision.strip()):
        raise RunLayoutError(f"{url!r}: REVISION must be a branch, tag or commit (no '..', no leading '/')")
    return HubSource(match[1], revision, subdir)


def _settings() -> dict:
    """Client settings read now (not at import): endpoint, cache dir, token, offline."""
    home = os.environ.get("HF_HOME")
    cache = os.environ.get("HF_HUB_CACHE") or (str(Path(home) / "hub") if home else None)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    return {"endpoint": os.environ.get("HF_ENDPOINT") or None, "cache_dir": cache,
            "token": os.environ.get("HF_TOKEN") or None, "offline": offline}


@contextlib.contextmanager
def hub_errors(repo: str, revision: str | None = None) -> Iterator[None]:
    """Turn huggingface_hub / network errors into one-line HubErrors."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except GatedRepoError:
        raise HubError(f"access to {repo} is restricted (gated or private)",
                       hint="Accept its conditions on the Hub and set HF_TOKEN.") from None
    except RepositoryNotFoundError:
        raise HubError(f"repository {repo} not found (or private)",
                       hint="Check the name; for a private repo set HF_TOKEN.") from None
    except RevisionNotFoundError:
        raise HubError(f"revision {revision!r} not found in {repo}", hint="List branches with: git ls-remote.") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise HubError(f"{repo} is not in the local cache and the Hub cannot be reached (offline)",
                       hint="Run once with network access (HF_HUB_OFFLINE unset) to fill the cache.") from None
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status in (401, 403):
            raise HubError(f"not authorised to read {repo} (HTTP {status})", hint="Set HF_TOKEN to a token with access.") from None
        raise HubError(f"the Hub answered HTTP {status} for {repo}", hint="Re-run: completed files are kept.") from None
    except OSError as err:  # connection failures from the HTTP layer
        raise HubError(f"cannot reach the Hub for {repo}: {type(err).__name__}",
                       hint="Check the network or HF_ENDPOINT; re-run to resume.") from None


def _api():
    from huggingface_hub import HfApi

    s = _settings()
    return HfApi(endpoint=s["endpoint"], token=s["token"])


def snapshot(repo: str, revision: str | None = None, *, allow_patterns: list[str] | None = None) -> Path:
    """Local path of the cached snapshot of ``repo`` at ``revision`` (only nextx's files)."""
    from huggingface_hub import snapshot_download

    s = _settings()
    with hub_errors(repo, revision):
        path = snapshot_download(
            repo, revision=revision, allow_patterns=allow_patterns or ALLOW_PATTERNS, cache_dir=s["cache_dir"],
            endpoint=s["endpoint"], token=s["token"], local_files_only=s["offline"],
        )
    return Path(path)


def _branch_steps(repo: str) -> dict[int, str]:
    with hub_errors(repo):
        refs = _api().list_repo_refs(repo)
    return {int(m[1]): b.name for b in refs.branches if (m := STEP_BRANCH.match(b.name))}


def _commit_steps(repo: str, revision: str | None) -> dict[int, str]:
    with hub_errors(repo, revision):
        commits = _api().list_repo_commits(repo, revision=revision or "main")
    steps: dict[int, str] = {}
    for commit in commits:  # newest first: keep the newest commit of a step
        if (m := COMMIT_TITLE.search(commit.title or "")) and int(m[1]) not in steps:
            steps[int(m[1])] = commit.commit_id
    return steps


MAX_STEPS_LISTED = 10_000  # one repository per step: more would be a typo, not a run


def parse_steps(spec: str) -> list[int]:
    """'10:150:10' → [10, 20, …, 150]; '10,20,40' → [10, 20, 40]; HubError naming what is wrong."""
    hint = "Use START:STOP:EVERY (e.g. 10:150:10) or a comma-separated list of steps."
    try:
        if ":" in spec:
            start, stop, every = (int(x) for x in spec.split(":"))
            if every < 1 or start < 0 or stop < start:
                raise ValueError
            if (stop - start) // every + 1 > MAX_STEPS_LISTED:
                raise HubError(f"--steps {spec!r} lists more than {MAX_STEPS_LISTED:,} steps", hint=hint)
            return list(range(start, stop + 1, every))
        steps = [int(x) for x in spec.split(",") if x.strip()]
        if not steps or any(s < 0 for s in steps):
            raise ValueError
        return steps
    except ValueError:
        raise HubError(f"--steps {spec!r} is not a list of steps", hint=hint) from None


def resolve_hub_run(
    source: str, *, layout: str = "auto", repo_template: str | None = None, steps: list[int] | None = None
) -> tuple[Path | None, dict[int, Path] | None, dict]:
    """(run directory, None) for a folder layout, or (None, {step: snapshot dir}) for one
    snapshot per step; plus a provenance record (repo, revisions)."""
    if layout not in HUB_LAYOUTS:
        raise HubError(f"unknown hub layout {layout!r}", hint=f"Choose one of: {', '.join(HUB_LAYOUTS)}.")
    if layout == "repos" or repo_template:
        if not repo_template or not steps:
            raise HubError("one repo per step needs --repo-template 'OWNER/NAME-{step}' and --steps START:STOP:EVERY")
        try:
            repos = {step: check_repo_id(repo_template.format(step=step), "--repo-template gives") for step in steps}
        except (KeyError, IndexError, ValueError):
            raise HubError(f"--repo-template {repo_template!r} may hold only {{step}}",
                           hint="Example: --repo-template 'org/run-step{step}'") from None
        snaps = {step: snapshot(repo) for step, repo in repos.items()}
        return None, snaps, {"repo_template": repo_template, "steps": steps}
    hub = parse_hub_url(source) if is_hub_url(source) else HubSource(str(source))
    folders = None  # why the snapshot's folders are not a run (the error; None: not looked at, or they are)
    if layout in ("auto", "folders"):
        root = snapshot(hub.repo, hub.revision)
        if hub.subdir and not (root / hub.subdir).is_dir():
            raise HubError(f"{hub.repo}{'@' + hub.revision if hub.revision else ''} has no folder {hub.subdir!r}",
                           hint="SUBDIR in hf://OWNER/REPO[@REVISION]/SUBDIR must name a folder of the repository.")
        root = root / hub.subdir if hub.subdir else root
        folders = _run_problem(root)
        if layout == "folders" or folders is None:
            return root, None, {"repo": hub.repo, "revision": hub.revision, "layout": "folders"}
    offline = _settings()["offline"]
    if layout in ("auto", "branches") and not offline:
        branches = _branch_steps(hub.repo)
        if branches:
            snaps = {step: _sub(snapshot(hub.repo, ref), hub.subdir) for step, ref in sorted(branches.items())}
            return None, snaps, {"repo": hub.repo, "layout": "branches", "revisions": branches}
    if layout in ("auto", "commits") and not offline:
        commits = _commit_steps(hub.repo, hub.revision)
        if commits:
            snaps = {step: _sub(snapshot(hub.repo, sha), hub.subdir) for step, sha in sorted(commits.items())}
            return None, snaps, {"repo": hub.repo, "layout": "commits", "revisions": commits}
    raise _no_checkpoints(hub.repo, folders, offline)


def _no_checkpoints(repo: str, folders: Exception | None, offline: bool) -> HubError:
    """Why a repository gave no run, one cause per message: its checkpoint folders are there but not
    readable as a run; offline, only the cached folders could be looked at; or there are none."""
    if folders is not None and not isinstance(folders, NoCheckpointsError):
        reason = getattr(folders, "message", None) or str(folders)
        return HubError(f"repository {repo} has checkpoint folders, but they are not a run nextx can read: {reason}",
                        hint="Check the repository's files (nextx downloads safetensors and JSON only, never "
                             "pickles).")
    if offline:
        return HubError(f"repository {repo} has no checkpoint-N folders in the local cache, and offline "
                        "(HF_HUB_OFFLINE) its step branches and commits cannot be listed",
                        hint="Unset HF_HUB_OFFLINE to look for them on the Hub.")
    return HubError(f"repository {repo} has no checkpoints",
                    hint="Tried checkpoint-N folders, step_N branches and 'Training in progress, step N' commits; "
                         "for one repo per step pass --repo-template and --steps.")


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


REPO_ID = re.compile(r"(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*")


def check_repo_id(repo: str, what: str = "repository id") -> str:
    """``repo`` if it is a valid Hub repository id (OWNER/NAME, ASCII letters, digits, - _ ., at most
    96 characters, no '..'), else HubError — before anything is downloaded or written."""
    if len(repo) > 96 or not repo.isascii() or not REPO_ID.fullmatch(repo) or ".." in repo or repo.endswith("."):
        raise HubError(f"{what} {repo!r} is not a Hub repository id",
                       hint="Use OWNER/NAME: letters, digits, '-', '_' and '.', at most 96 characters.")
    return repo


def resolve_model(ref: str | os.PathLike) -> Path:
    """A local model directory for ``ref``: an existing directory as given; ``hf://OWNER/REPO[@REV][/SUBDIR]``
    or a Hub id ``OWNER/REPO`` fetched into the HF cache (safetensors weights, configs and tokenizer
    files only: never a pickle). Anything else is returned as a path, for the caller to report."""
    text = os.fspath(ref)
    if not is_hub_url(text) and (Path(text).exists() or not HUB_ID.fullmatch(text)):
        return Path(text)
    source = parse_hub_url(text) if is_hub_url(text) else HubSource(text)
    return _sub(snapshot(source.repo, source.revision), source.subdir)


def _sub(path: Path, subdir: str | None) -> Path:
    return path / subdir if subdir else path


def _run_problem(root: Path) -> Exception | None:
    """Why ``root`` is not a run (the reader's error), or None when it is one."""
    try:
        discover_checkpoints(root)
    except Exception as err:  # noqa: BLE001 - "not a run" in any way means: try the other layouts
        return err
    return None


def push(folder: str | Path, repo: str, *, private: bool = False, message: str | None = None,
         revision: str | None = None, create_pr: bool = False) -> str:
    """Create ``repo`` if needed and upload ``folder`` (weights, model card, nextx.json) to ``revision``
    (a branch, created if missing) or as a pull request; return the commit's or PR's URL."""
    api = _api()
    with hub_errors(repo, revision):
        api.create_repo(repo, private=private, exist_ok=True)
        if revision and not create_pr:
            api.create_branch(repo, branch=revision, exist_ok=True)
        info = api.upload_folder(repo_id=repo, folder_path=str(folder), revision=revision, create_pr=create_pr,
                                 commit_message=message or "Upload extrapolated weights (nextx)")
    if create_pr and getattr(info, "pr_url", None):
        return info.pr_url
    endpoint = _settings()["endpoint"] or "https://huggingface.co"
    return f"{endpoint.rstrip('/')}/{repo}" + (f"/tree/{revision}" if revision else "")
