"""A small Hub-compatible HTTP server on 127.0.0.1 for offline tests of the real huggingface_hub client.

It serves the endpoints the client needs for downloads (revision info, tree, refs, commits,
resolve with HEAD/GET/Range) and uploads (create repo, preupload, commit), from an in-memory store
of git-like commits. Repos can be private/gated (403 without the right token); files can be made
to fail a number of times (to test interrupted downloads). Nothing leaves the loopback interface.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

TOKEN = "hf_test_token_not_a_secret"


@dataclass
class Commit:
    sha: str
    title: str
    files: dict[str, bytes]
    parent: str | None


@dataclass
class Repo:
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)
    gated: bool = False


class HubState:
    """Repos, and counters the tests assert on."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.fail_file: dict[str, int] = {}  # path → remaining failures
        self.downloads: list[str] = []
        self.lock = threading.Lock()

    def commit(self, repo_id: str, files: dict[str, bytes], title: str = "upload", branch: str = "main",
               replace: bool = False) -> str:
        repo = self.repos.setdefault(repo_id, Repo())
        parent = repo.branches.get(branch)
        tree = {} if replace or parent is None else dict(repo.commits[parent].files)
        tree.update(files)
        sha = hashlib.sha1(f"{repo_id}{branch}{title}{time.time_ns()}{len(repo.commits)}".encode()).hexdigest()
        repo.commits[sha] = Commit(sha, title, tree, parent)
        repo.branches[branch] = sha
        return sha

    def resolve(self, repo_id: str, revision: str) -> Commit | None:
        repo = self.repos[repo_id]
        revision = unquote(revision)
        sha = repo.branches.get(revision, revision)
        return repo.commits.get(sha)


def _oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Handler(BaseHTTPRequestHandler):
    state: HubState

    def log_message(self, fmt, *args):  # quiet unless HUB_SERVER_LOG is set
        import os
        import sys

        if os.environ.get("HUB_SERVER_LOG"):
            print(fmt % args, file=sys.stderr)

    # -- helpers ------------------------------------------------------------------------------
    def _send(self, code: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload, code=200, headers=None):
        self._send(code, json.dumps(payload).encode(), headers)

    def _error(self, code: int, error_code: str, message: str):
        self._json({"error": message}, code, {"X-Error-Code": error_code, "X-Error-Message": message})

    def _repo(self, repo_id: str):
        repo = self.state.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return None
        if repo.gated and self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._error(403, "GatedRepo", f"Access to {repo_id} is restricted")
            return None
        return repo

    def _commit(self, repo_id: str, revision: str):
        if self._repo(repo_id) is None:
            return None
        commit = self.state.resolve(repo_id, revision)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    # -- routes -------------------------------------------------------------------------------
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlparse(self.path)
        path = url.path
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/discussions/(\d+)", path):
            self._json({"title": "nextx", "num": int(m[2]), "author": {"name": "me"}, "status": "open",
                        "createdAt": "2026-01-01T00:00:00.000Z", "repo": {"name": m[1], "type": "model"},
                        "isPullRequest": True, "events": [], "changes": {"base": "refs/heads/main"},
                        "filesWithConflicts": []})
        elif m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/(.+)", path):
            if commit := self._commit(m[1], m[2]):
                self._json({"id": m[1], "modelId": m[1], "sha": commit.sha, "private": False,
                            "siblings": [{"rfilename": f} for f in sorted(commit.files)]})
        elif m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path):
            if commit := self._commit(m[1], m[2]):
                prefix = (m[3] or "").strip("/")
                entries = [{"type": "file", "path": f, "size": len(d), "oid": _oid(d)}
                           for f, d in sorted(commit.files.items()) if not prefix or f.startswith(prefix + "/")]
                self._json(entries)
        elif m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/refs", path):
            if repo := self._repo(m[1]):
                self._json({"branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s}
                                         for b, s in repo.branches.items()], "converts": [], "tags": []})
        elif m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/commits/(.+)", path):
            if commit := self._commit(m[1], m[2]):
                history = []
                while commit is not None:
                    history.append({"id": commit.sha, "title": commit.title, "message": "", "authors": [],
                                    "date": "2026-11-25T00:00:00.000Z"})
                    commit = self.state.repos[m[1]].commits.get(commit.parent) if commit.parent else None
                self._json(history)
        elif m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            self._resolve(m[1], m[2], unquote(m[3]))
        else:
            self._error(404, "EntryNotFound", f"no route {path}")

    def _resolve(self, repo_id: str, revision: str, filename: str):
        commit = self._commit(repo_id, revision)
        if commit is None:
            return
        if filename not in commit.files:
            self._error(404, "EntryNotFound", f"{filename} not found")
            return
        data = commit.files[filename]
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{_oid(data)}"', "Accept-Ranges": "bytes"}
        if self.command == "GET":
            with self.state.lock:
                remaining = self.state.fail_file.get(filename, 0)
                if remaining:
                    self.state.fail_file[filename] = remaining - 1
            if remaining:
                self._error(500, "Internal", "simulated interruption")
                return
            self.state.downloads.append(filename)
            if rng := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "")):
                start = int(rng[1])
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                self._send(206, data[start:], headers, "application/octet-stream")
                return
        self._send(200, data, headers, "application/octet-stream")

    def do_POST(self):
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if url.path == "/api/repos/create":
            payload = json.loads(body)
            repo_id = f"{payload.get('organization')}/{payload['name']}" if payload.get("organization") else payload["name"]
            if repo_id in self.state.repos:  # like the Hub: the existing repo's url comes with the 409
                message = "You already created this model repo"
                self._json({"error": message, "url": f"http://{self.headers['Host']}/{repo_id}"}, 409,
                           {"X-Error-Code": "RepoExists", "X-Error-Message": message})
                return
            self.state.repos[repo_id] = Repo()
            self.state.commit(repo_id, {".gitattributes": b""}, "initial commit")
            self._json({"url": f"http://{self.headers['Host']}/{repo_id}", "name": repo_id, "id": repo_id})
        elif url.path == "/api/validate-yaml":
            self._json({"errors": [], "warnings": []})
        elif m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/preupload/(.+)", url.path):
            files = json.loads(body)["files"]
            self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
        elif m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/commit/(.+)", url.path):
            if self._repo(m[1]) is None:
                return
            files, title = {}, "upload"
            for line in body.splitlines():
                item = json.loads(line)
                if item["key"] == "header":
                    title = item["value"].get("summary", title)
                elif item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            branch, pr_url = unquote(m[2]), None
            if parse_qs(url.query).get("create_pr") == ["1"]:  # a pull request: a refs/pr/N branch off the base
                repo = self.state.repos[m[1]]
                number = 1 + sum(name.startswith("refs/pr/") for name in repo.branches)
                repo.branches[f"refs/pr/{number}"] = repo.branches[branch]
                branch, pr_url = f"refs/pr/{number}", f"http://{self.headers['Host']}/{m[1]}/discussions/{number}"
            sha = self.state.commit(m[1], files, title, branch=branch)
            self._json({"commitUrl": f"http://{self.headers['Host']}/{m[1]}/commit/{sha}", "commitOid": sha,
                        "pullRequestUrl": pr_url})
        elif m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/discussions", url.path):  # a pull request
            repo = self._repo(m[1])
            if repo is None:
                return
            number = 1 + sum(name.startswith("refs/pr/") for name in repo.branches)
            repo.branches[f"refs/pr/{number}"] = repo.branches["main"]
            self._json({"num": number, "url": f"http://{self.headers['Host']}/{m[1]}/discussions/{number}",
                        "pullRequest": True})
        elif m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/branch/(.+)", url.path):
            repo = self._repo(m[1])
            if repo is None:
                return
            branch = unquote(m[2])
            if branch in repo.branches:
                self._error(409, "BranchExists", "Reference already exists")
                return
            repo.branches[branch] = repo.branches["main"]
            self._json({})
        else:
            self._error(404, "EntryNotFound", f"no route {url.path}")


def start_server(state: HubState) -> tuple[ThreadingHTTPServer, str]:
    handler = type("BoundHandler", (Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
