"""Writing outputs safely: atomic directories, files copied from the base, JSON.

Every output is built in a temporary sibling directory and renamed into place on success; on any
error or Ctrl-C the temporary directory is removed, so no partial output is ever left behind. An
existing output is replaced only with ``force=True``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from safetensors import SafetensorError

from nextx.errors import NextxError, OutputExistsError

COPY_FROM_BASE = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt", "chat_template.jinja",
                  "added_tokens.json")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def overlaps(a: Path, b: Path) -> bool:
    """True when two resolved paths are the same, or one lies inside the other."""
    return a == b or a in b.parents or b in a.parents


def remove_stale_siblings(out: Path) -> None:
    """Remove ``.OUT.nextx-{tmp,old,lock}-PID`` left by a process that was killed (kill -9, power loss)."""
    if not out.parent.is_dir():
        return
    prefix = f".{out.name}.nextx-"  # compared as text: an -o with glob characters ([, *, ?) matches itself
    for sibling in (p for p in out.parent.iterdir() if p.name.startswith(prefix)):
        kind, _, pid = sibling.name.removeprefix(prefix).partition("-")
        if kind in ("tmp", "old", "lock") and pid.isdigit() and not pid_alive(int(pid)):
            if sibling.is_dir() and not sibling.is_symlink():
                shutil.rmtree(sibling, ignore_errors=True)
            else:
                sibling.unlink(missing_ok=True)


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """One writer per output: an exclusive ``flock`` on ``.OUT.nextx-lock`` (released by the kernel when
    its holder dies, so a killed writer's lock is free, and two newcomers cannot both take it), which
    holds the writer's pid; removed on exit."""
    lock = out.parent / f".{out.name}.nextx-lock"
    fd = _take_lock(lock, out)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        lock.unlink(missing_ok=True)  # still holding it: a waiting newcomer re-checks the path's inode
        os.close(fd)


def _take_lock(lock: Path, out: Path) -> int:
    import fcntl

    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o644)
        except OSError as err:  # a directory, a symlink, no permission
            raise OutputExistsError(f"the output's lock file cannot be used: {err.strerror}", path=lock,
                                    hint="Remove it if no nextx process is writing this output.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise OutputExistsError(f"another nextx process{holder} is writing this output", path=out,
                                    hint="Wait for it to finish, or choose another -o.") from None
        try:
            current = os.stat(lock, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            return fd
        os.close(fd)  # its holder removed it while we opened it: take the new one


def _lock_holder(fd: int) -> str:
    """" (pid N)" from the lock's first bytes when they are a plain pid, else nothing (never its text)."""
    text = os.pread(fd, 12, 0).decode("ascii", "replace").strip()
    return f" (pid {int(text)})" if text.isascii() and text.isdigit() and len(text) <= 10 else ""


@contextlib.contextmanager
def atomic_output_dir(out: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a fresh temp dir beside ``out``; rename it to ``out`` on success, delete it on failure.
    One writer at a time (a lock file); stale temp dirs of killed runs are removed first."""
    out = Path(out)
    if out.exists() and not force:
        raise OutputExistsError("output already exists", path=out, hint="Pass --force to replace it, or choose another -o.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise NextxError(f"cannot create the output's parent directory: {err.strerror}", path=out.parent,
                         hint="Choose an -o whose parent is (or can be) a writable directory.") from None
    remove_stale_siblings(out)
    with output_lock(out), _io_errors(out):
        tmp = out.parent / f".{out.name}.nextx-tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            yield tmp
            _replace(tmp, out, force)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


@contextlib.contextmanager
def _io_errors(out: Path, option: str = "-o") -> Iterator[None]:
    """A disk full, read-only or permission error while writing: one line naming the output."""
    hint = f"Free disk space or choose a writable {option}; nothing partial was left behind."
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.ENOTDIR):
            raise
        raise NextxError(f"cannot write the output: {err.strerror}", path=out, hint=hint) from None
    except SafetensorError as err:  # safetensors' own writer reports the OS error in its text
        reason = next((text for code, text in _OS_ERRORS.items()
                       if f"(os error {code})" in str(err) or f"code: {code}," in str(err)), None)
        if reason is None:
            raise
        raise NextxError(f"cannot write the output: {reason}", path=out, hint=hint) from None


_OS_ERRORS = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded",
              errno.EROFS: "Read-only file system", errno.EACCES: "Permission denied"}


def _replace(tmp: Path, out: Path, force: bool) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` (re-checked now) only with ``force``."""
    if not (out.exists() or out.is_symlink()):
        tmp.rename(out)
        return
    if not force:
        raise OutputExistsError("output appeared while nextx was writing it", path=out,
                                hint="Pass --force to replace it, or choose another -o.")
    old = out.parent / f".{out.name}.nextx-old-{os.getpid()}"
    out.rename(old)
    tmp.rename(out)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


def parse_size(size: str | int) -> int:
    """'5GB' → 5_000_000_000; '500MB', '2GiB', '5G' (the unit letter alone, as split, du and docker
    write sizes: decimal), or a plain number of bytes; positive and finite."""
    if isinstance(size, int) and not isinstance(size, bool):
        value = size
    else:
        text = str(size).strip().upper()
        units = {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TB": 10**12, "KB": 10**3, "MB": 10**6, "GB": 10**9,
                 "T": 10**12, "K": 10**3, "M": 10**6, "G": 10**9, "B": 1}
        unit = next((u for u in units if text.endswith(u)), "")
        try:
            amount = float(text[: len(text) - len(unit)]) * units.get(unit, 1)
        except ValueError:
            amount = math.nan
        value = int(amount) if math.isfinite(amount) else -1
    if value < 1:
        raise NextxError(f"--shard-size {size!r} is not a size", hint="Use e.g. 5GB, 500MB, 2GiB or a number of bytes.")
    return value


def copy_model_files(base: Path, out: Path) -> None:
    """Config, generation config and tokenizer files of the base model, beside merged weights."""
    for name in COPY_FROM_BASE:
        if (base / name).exists():
            shutil.copy2(base / name, out / name)


def json_safe(value):
    """``value`` with every non-finite float (NaN, ±Inf) replaced by None: JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def dumps_json(payload: dict, indent: int | None = 2) -> str:
    """Strict JSON (no bare NaN/Infinity), numbers that are not floats (numpy, torch) as floats."""
    return json.dumps(json_safe(payload), indent=indent, default=float, allow_nan=False)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small file as a whole or not at all: a temp file beside it, then an atomic rename."""
    tmp = path.with_name(f".{path.name}.nextx-tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: str | Path, option: str = "-o") -> Iterator[Path]:
    """One new file written whole or not at all: yields a temp path beside ``path``, renamed to it when
    the block ends (never over an existing file); on any error the temp file is gone, and a full or
    read-only disk is one line naming ``path`` and the ``option`` that chose it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.nextx-tmp-{os.getpid()}")
    try:
        with _io_errors(path, option):
            yield tmp
            _replace(tmp, path, force=False)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, payload: dict) -> None:
    path.write_text(dumps_json(payload) + "\n")
