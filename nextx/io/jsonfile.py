"""Reading the small JSON files of a run (configs, indexes, trainer state) defensively.

A path that is a directory, a FIFO, a device (a config symlinked to /dev/zero) or larger than
`MAX_JSON_BYTES`, an unreadable file (EACCES) or invalid JSON is a `CheckpointError` naming the file,
never a hang, an unbounded read or a traceback.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from nextx.errors import CheckpointError

MAX_JSON_BYTES = 64 * 2**20


def read_json(path: str | Path, what: str | None = None):
    """The parsed JSON of a regular file of at most `MAX_JSON_BYTES`."""
    path = Path(path)
    what = what or path.name
    text = read_text_checked(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{what} is not valid JSON: {err.msg}", path=path) from None


def read_text_checked(path: str | Path, what: str | None = None, limit: int = MAX_JSON_BYTES) -> str:
    """The UTF-8 text (a leading byte-order mark dropped) of a regular file of at most ``limit`` bytes
    (see the module docstring)."""
    path = Path(path)
    what = what or path.name
    try:
        info = os.stat(path)
    except OSError as err:
        raise CheckpointError(f"cannot read {what}: {err.strerror}", path=path) from None
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{what} is not a regular file", path=path, hint="Point it at the JSON file itself.")
    if info.st_size > limit:
        noun = "a config" if limit == MAX_JSON_BYTES else f"nextx reads ({limit / 2**20:.0f} MiB)"
        raise CheckpointError(f"{what} is {info.st_size / 2**20:.0f} MiB, more than {noun}"
                              + (" can be" if limit == MAX_JSON_BYTES else ""), path=path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(limit + 1).removeprefix("\ufeff")
    except OSError as err:
        raise CheckpointError(f"cannot read {what}: {err.strerror}", path=path) from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{what} is not UTF-8 text", path=path) from None
    return text
