"""`pull`: a run from the Hub laid out on disk so every nextx command reads it — only the files nextx
reads, hard-linked to the HF cache's blobs (never to anything else a tampered cache points at)."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from pathlib import Path

from nextx.errors import HubError
from nextx.io.hub import ALLOW_PATTERNS, HF_PREFIX, check_repo_id, is_hub_url, resolve_hub_run
from nextx.io.write import atomic_output_dir


def pull(repo: str, out: str | Path, *, revision: str | None = None, layout: str = "auto",
         repo_template: str | None = None, steps: list[int] | None = None, force: bool = False) -> Path:
    """Download a run and lay it out in ``out`` so every nextx command reads it (TRL layout for
    per-step snapshots; the repo's own layout for folders). Writes out/nextx-source.json."""
    if not (is_hub_url(repo) or repo_template):
        check_repo_id(repo)
    url = repo if is_hub_url(repo) or repo_template else f"{HF_PREFIX}{repo}" + (f"@{revision}" if revision else "")
    root, per_step, record = resolve_hub_run(url, layout=layout, repo_template=repo_template, steps=steps)
    with atomic_output_dir(out, force=force) as tmp:
        if root is not None:
            _lay_out(root, tmp)
        else:
            for step, path in per_step.items():
                _lay_out(path, tmp / f"checkpoint-{step}")
        (tmp / "nextx-source.json").write_text(json.dumps({"source": url, **record}, indent=2))
    return Path(out)


def _lay_out(source: Path, target: Path) -> None:
    """Only the allow-listed files of a snapshot (never optimizer states or pickles a warm cache may
    hold), hard-linked to the cache's blobs where the filesystem allows (no second copy on disk)."""
    blobs = _cache_blobs(source)
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir() or not any(fnmatch.fnmatch(str(relative), pattern) for pattern in ALLOW_PATTERNS):
            continue
        blob = path.resolve()
        if not blob.is_file():
            continue
        if blobs is not None and blobs not in blob.parents:  # a tampered cache: never link (or copy) elsewhere
            raise HubError(f"the cached snapshot's {relative} points outside the cache's blobs ({blob})",
                           hint="Delete this repository's folder in the Hugging Face cache and pull again.")
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(blob, destination)
        except OSError:
            shutil.copy2(blob, destination)


def _cache_blobs(snapshot_dir: Path) -> Path | None:
    """The ``blobs`` folder of the HF cache entry holding ``snapshot_dir`` (…/snapshots/REV[/SUBDIR]),
    or None for a folder that is not in a cache."""
    for folder in (snapshot_dir, *snapshot_dir.parents):
        if folder.parent.name == "snapshots":
            return folder.parent.parent.resolve() / "blobs"
    return None
