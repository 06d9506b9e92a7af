"""Streaming sharded safetensors writer: bounded memory, writes overlapped with compute.

The names, dtypes and shapes of every output tensor are known before any is computed (they come
from the base model's headers), so the shard layout and each shard's header are fixed up front.
Each tensor's bytes are then streamed straight into its shard by a background thread while the
caller computes the next one: memory holds at most ``queue_depth`` tensors, never a whole shard.

File format (safetensors): an 8-byte little-endian header length N, N bytes of JSON
``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`` padded with
spaces to a multiple of 8, then the tensors' bytes back to back in header order.
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import split_state_dict_into_shards_factory

from nextx.errors import NextxError
from nextx.io.tensors import SAFETENSORS_DTYPES, WEIGHTS_FILE, WEIGHTS_INDEX


@dataclass(frozen=True)
class TensorEntry:
    """One output tensor: its name, dtype and shape."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


# safetensors' own order inside a file: dtype descending in its Dtype enum, then name — widest types
# first, so every tensor starts at a multiple of its element size (zero-copy loaders rely on it)
SAFETENSORS_DTYPE_ORDER = ("BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16",
                           "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64")


def safetensors_order(entry: TensorEntry) -> tuple[int, str]:
    return -SAFETENSORS_DTYPE_ORDER.index(SAFETENSORS_DTYPES[entry.dtype]), entry.name


def shard_layout(entries: list[TensorEntry], max_shard_bytes: int) -> list[list[TensorEntry]]:
    """The entries split into shards exactly as transformers' save_pretrained splits a state dict
    (huggingface_hub's `split_state_dict_into_shards_factory`: greedy in order, a tensor larger than
    the cap alone in its own shard); inside each shard, safetensors' own order (`safetensors_order`)."""
    by_name = {entry.name: entry for entry in entries}
    split = split_state_dict_into_shards_factory(by_name, get_storage_size=lambda entry: entry.nbytes,
                                                 filename_pattern="model{suffix}.safetensors",
                                                 max_shard_size=max_shard_bytes)
    return [sorted((by_name[name] for name in names), key=safetensors_order)
            for names in split.filename_to_tensors.values()]


def safetensors_header(entries: list[TensorEntry], metadata: dict[str, str] | None = None) -> bytes:
    """The length-prefixed, 8-byte aligned JSON header for tensors stored in this order."""
    header: dict[str, object] = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    for entry in entries:
        header[entry.name] = {"dtype": SAFETENSORS_DTYPES[entry.dtype], "shape": list(entry.shape),
                              "data_offsets": [offset, offset + entry.nbytes]}
        offset += entry.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text


class ShardedWriter:
    """Writes the planned tensors, in plan order (``planned``: shard by shard, safetensors' order inside
    each), into HF-named shards plus the index.

    ``add(name, tensor)`` hands a tensor to the writer thread and returns at once (blocking only
    when ``queue_depth`` tensors are already waiting). ``close()`` waits for the last bytes and
    writes model.safetensors.index.json (a single shard is model.safetensors, with no index).
    Use as a context manager: on an error the thread is stopped before the caller cleans up.
    """

    def __init__(self, directory: Path, entries: list[TensorEntry], max_shard_bytes: int, *, queue_depth: int = 2):
        self.directory = Path(directory)
        self.shards = shard_layout(entries, max_shard_bytes)
        count = len(self.shards)
        self.paths = [self.directory / (WEIGHTS_FILE if count == 1 else f"model-{k:05d}-of-{count:05d}.safetensors")
                      for k in range(1, count + 1)]
        self._order = [(k, entry) for k, shard in enumerate(self.shards) for entry in shard]
        self.planned = [entry for _, entry in self._order]  # the order add() expects the tensors in
        self._next = 0
        self.total_bytes = sum(entry.nbytes for entry in entries)
        self._queue: queue.Queue = queue.Queue(maxsize=queue_depth)
        self._error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._write_all, name="nextx-shard-writer", daemon=True)
        self._thread.start()

    def add(self, name: str, tensor: torch.Tensor) -> None:
        if self._next >= len(self._order):
            raise NextxError(f"internal: tensor {name} was not planned for this output")
        shard, entry = self._order[self._next]
        if name != entry.name or tensor.dtype != entry.dtype or tuple(tensor.shape) != entry.shape:
            raise NextxError(f"internal: got {name} {tensor.dtype} {tuple(tensor.shape)}, planned "
                             f"{entry.name} {entry.dtype} {entry.shape}")
        self._next += 1
        self._put((shard, tensor.detach().contiguous()))

    def _put(self, item) -> None:
        while True:  # a timeout, so a failed writer thread is noticed instead of blocking forever
            self._raise_if_failed()
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _write_all(self) -> None:
        handle, current, drained = None, -1, False
        try:
            while (item := self._queue.get()) is not None:
                shard, tensor = item
                if self._cancelled:
                    continue
                if shard != current:
                    if handle is not None:
                        handle.close()
                    handle, current = open(self.paths[shard], "wb"), shard  # noqa: SIM115 - closed below
                    handle.write(safetensors_header(self.shards[shard]))
                handle.write(tensor.reshape(-1).view(torch.uint8).numpy())
            drained = True  # the caller's end-of-queue has been taken
            if handle is not None:
                handle, last = None, handle
                last.close()  # NFS and others report deferred write errors here: they are the caller's too
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            self._error = err
            while not drained and self._queue.get() is not None:  # drain, so the caller never blocks
                pass
        finally:
            if handle is not None:
                with contextlib.suppress(OSError):  # after an error already handed on
                    handle.close()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> ShardedWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """On an error, stop the writer thread before the caller's atomic_output_dir removes the
        directory, so no file is written after cleanup."""
        self._cancelled = exc_type is not None
        self._stop()

    def close(self) -> list[Path]:
        if self._next != len(self._order):
            missing = self._order[self._next][1].name
            raise NextxError(f"internal: output closed before tensor {missing} was written")
        self._stop()
        self._raise_if_failed()
        if len(self.paths) > 1:
            weight_map = {entry.name: path.name for path, shard in zip(self.paths, self.shards, strict=True)
                          for entry in shard}
            index = {"metadata": {"total_size": self.total_bytes}, "weight_map": weight_map}
            (self.directory / WEIGHTS_INDEX).write_text(json.dumps(index, indent=2))
        return self.paths
