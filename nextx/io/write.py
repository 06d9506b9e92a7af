"""Writing outputs safely: atomic directories, PEFT adapters, sharded safetensors with an index.

Every output is built in a temporary sibling directory and renamed into place on success; on any
error or Ctrl-C the temporary directory is removed, so no partial output is ever left behind. An
existing output is replaced only with ``force=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch
from safetensors.torch import save_file

from nextx.errors import OutputExistsError

INDEX_NAME = "model.safetensors.index.json"
COPY_FROM_BASE = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt", "chat_template.jinja",
                  "added_tokens.json")


@contextlib.contextmanager
def atomic_output_dir(out: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a fresh temp dir beside ``out``; rename it to ``out`` on success, delete it on failure."""
    out = Path(out)
    if out.exists() and not force:
        raise OutputExistsError("output already exists", path=out, hint="Pass --force to replace it, or choose another -o.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.nextx-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.nextx-old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def parse_size(size: str | int) -> int:
    """'5GB' → 5_000_000_000; '500MB', '2GiB', or a plain number of bytes."""
    if isinstance(size, int):
        return size
    text = size.strip().upper()
    units = {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9, "B": 1}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


class ShardedWriter:
    """Writes tensors in order into size-capped shards, then model.safetensors.index.json.

    A full shard is written by a background thread while the next one fills, so at most two shards
    are in memory. Shards get their final HF names (model-0000k-of-0000N) at `close()`, when N is
    known; a single shard is named model.safetensors with no index.
    """

    def __init__(self, directory: Path, max_shard_bytes: int):
        self.directory = Path(directory)
        self.max_shard_bytes = max_shard_bytes
        self._pending: dict[str, torch.Tensor] = {}
        self._pending_bytes = 0
        self._shards: list[tuple[Path, list[str]]] = []
        self._writer = ThreadPoolExecutor(max_workers=1)
        self._writing: Future | None = None
        self.total_bytes = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if self._pending and self._pending_bytes + size > self.max_shard_bytes:
            self._flush()
        self._pending[name] = tensor.contiguous()
        self._pending_bytes += size
        self.total_bytes += size

    def _flush(self) -> None:
        path = self.directory / f".shard-{len(self._shards):05d}.safetensors"
        self._wait()
        self._writing = self._writer.submit(save_file, self._pending, path, metadata={"format": "pt"})
        self._shards.append((path, list(self._pending)))
        self._pending, self._pending_bytes = {}, 0

    def _wait(self) -> None:
        if self._writing is not None:
            self._writing.result()  # re-raises a failed write here
            self._writing = None

    def __enter__(self) -> ShardedWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """On an error, let the background write finish (its own error is secondary) before the
        caller's atomic_output_dir removes the directory: no file is written after cleanup."""
        if exc_type is not None:
            with contextlib.suppress(Exception):
                self._wait()
            self._writer.shutdown()

    def close(self) -> list[Path]:
        if self._pending or not self._shards:
            self._flush()
        self._wait()
        self._writer.shutdown()
        if len(self._shards) == 1:
            final = self.directory / "model.safetensors"
            self._shards[0][0].rename(final)
            return [final]
        count = len(self._shards)
        weight_map, paths = {}, []
        for k, (path, names) in enumerate(self._shards, start=1):
            final = self.directory / f"model-{k:05d}-of-{count:05d}.safetensors"
            path.rename(final)
            paths.append(final)
            weight_map.update({name: final.name for name in names})
        index = {"metadata": {"total_size": self.total_bytes}, "weight_map": weight_map}
        (self.directory / INDEX_NAME).write_text(json.dumps(index, indent=2))
        return paths


def copy_model_files(base: Path, out: Path) -> None:
    """Config, generation config and tokenizer files of the base model, beside merged weights."""
    for name in COPY_FROM_BASE:
        if (base / name).exists():
            shutil.copy2(base / name, out / name)


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
