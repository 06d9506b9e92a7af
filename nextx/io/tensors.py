"""Lazy, validated tensor reading: one safetensors file, an HF sharded checkpoint, or (opt-in) pickle.

Every reader returns float tensors one at a time (plain reads of their byte ranges, no memory map),
so peak memory is the tensors in hand, not the checkpoint. Corrupt or truncated files and non-finite values raise
`CheckpointError` naming the file and the tensor.
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from nextx.errors import CheckpointError, NextxError, UnsupportedAdapterError, first_line
from nextx.io.jsonfile import read_json

WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL", torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
}
TORCH_DTYPES = {name: dtype for dtype, name in SAFETENSORS_DTYPES.items()}


class SafetensorsFile:
    """One .safetensors file, read lazily.

    The header is validated (by the safetensors library) and parsed once; each `get_many` then reads
    just the requested byte ranges into fresh tensors with plain file reads — no memory map, so
    resident memory does not grow with the tensors already read, and no per-call header parsing.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        _check_regular(self.path)
        try:
            with safe_open(str(self.path), framework="pt"):
                pass  # the library validates the header against the file (offsets, size, dtypes)
            with open(self.path, "rb") as raw:
                (length,) = struct.unpack("<Q", raw.read(8))
                header = json.loads(raw.read(length))
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(
                f"cannot read safetensors file: {first_line(err)}",
                path=self.path,
                hint="The file is corrupt or truncated; re-save or re-download this checkpoint.",
            ) from None
        header.pop("__metadata__", None)
        header = dict(sorted(header.items()))  # names in sorted order, as the safetensors library lists them
        self._data_start = 8 + length
        self._shapes = {key: tuple(info["shape"]) for key, info in header.items()}
        self._dtypes = {key: info["dtype"] for key, info in header.items()}
        self._ranges = {key: tuple(info["data_offsets"]) for key, info in header.items()}

    def keys(self) -> list[str]:
        return list(self._shapes)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._shapes[key]

    def dtype(self, key: str) -> torch.dtype:
        name = self._dtypes[key]
        if name not in TORCH_DTYPES:
            raise CheckpointError(f"tensor {key} has dtype {name}, which nextx does not handle", path=self.path)
        return TORCH_DTYPES[name]

    def get_many(self, keys: list[str], *, check: bool = True) -> list[torch.Tensor]:
        """The tensors (``check``: refuse NaN/Inf; off for tensors only copied through)."""
        try:
            with open(self.path, "rb") as raw:
                tensors = [self._read(raw, key) for key in keys]
        except (OSError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"cannot read tensors {', '.join(keys)}: {first_line(err)}", path=self.path) from None
        return [checked(tensor, key, self.path) if check else tensor for tensor, key in zip(tensors, keys, strict=True)]

    def get(self, key: str, *, check: bool = True) -> torch.Tensor:
        return self.get_many([key], check=check)[0]

    def _read(self, raw, key: str) -> torch.Tensor:
        begin, end = self._ranges[key]
        data = torch.empty(end - begin, dtype=torch.uint8)
        raw.seek(self._data_start + begin)
        if raw.readinto(data.numpy()) != end - begin:
            raise ValueError(f"the file ends inside tensor {key} (truncated after it was opened)")
        return data.view(self.dtype(key)).reshape(self._shapes[key])


class ShardedSafetensors:
    """An HF checkpoint: model.safetensors, or shards listed in model.safetensors.index.json."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        index = self.directory / WEIGHTS_INDEX
        if index.exists():
            try:
                weight_map = read_json(index)["weight_map"]
            except (KeyError, TypeError) as err:
                raise CheckpointError(f"unreadable shard index: {first_line(err)}", path=index) from None
        else:
            weight_map = {key: WEIGHTS_FILE for key in SafetensorsFile(self.directory / WEIGHTS_FILE).keys()}
        if not isinstance(weight_map, dict):
            raise CheckpointError("the shard index's weight_map is not an object", path=index)
        for name in set(weight_map.values()):  # shards must lie inside the model directory
            if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts:
                raise CheckpointError(f"the shard index names a file outside the model directory: {name!r}",
                                      path=index, hint="Shard names must be plain file names inside the directory.")
        self._weight_map: dict[str, str] = weight_map
        self._files: dict[str, SafetensorsFile] = {}

    def _file(self, key: str) -> SafetensorsFile:
        name = self._weight_map[key]
        if name not in self._files:
            path = self.directory / name
            if not path.exists():
                raise CheckpointError(f"shard {name} listed in the index is missing", path=self.directory)
            self._files[name] = SafetensorsFile(path)
        return self._files[name]

    def keys(self) -> list[str]:
        return list(self._weight_map)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._file(key).shape(key)

    def dtype(self, key: str) -> torch.dtype:
        return self._file(key).dtype(key)

    def get(self, key: str, *, check: bool = True) -> torch.Tensor:
        return self._file(key).get(key, check=check)

    def get_many(self, keys: list[str], *, check: bool = True) -> list[torch.Tensor]:
        return [self.get(key, check=check) for key in keys]


class PickleFile:
    """A pickled state dict (.bin/.pt), loaded only on explicit opt-in with weights_only=True."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._tensors = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad checkpoint
            raise CheckpointError(f"cannot load pickle with weights_only=True: {first_line(err)}", path=path) from None

    def keys(self) -> list[str]:
        return list(self._tensors)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._tensors[key].shape)

    def dtype(self, key: str) -> torch.dtype:
        return self._tensors[key].dtype

    def get(self, key: str, *, check: bool = True) -> torch.Tensor:
        return checked(self._tensors[key], key, self.path) if check else self._tensors[key]

    def get_many(self, keys: list[str], *, check: bool = True) -> list[torch.Tensor]:
        return [self.get(key, check=check) for key in keys]


def open_tensor_file(directory: Path, stem: str, *, allow_pickle: bool) -> SafetensorsFile | PickleFile:
    """``stem``.safetensors in ``directory``; ``stem``.bin/.pt only with ``allow_pickle``."""
    path = directory / f"{stem}.safetensors"
    if path.exists():
        return SafetensorsFile(path)
    for suffix in PICKLE_SUFFIXES:
        pickled = directory / f"{stem}{suffix}"
        if pickled.exists():
            if not allow_pickle:
                raise UnsupportedAdapterError(
                    f"only a pickle file {pickled.name} was found, and nextx does not unpickle by default",
                    path=directory,
                    hint="Convert it to safetensors, or pass --allow-pickle to load it with torch.load(weights_only=True).",
                )
            return PickleFile(pickled)
    raise CheckpointError(f"no {stem}.safetensors found", path=directory)


def _check_regular(path: Path) -> None:
    """CheckpointError unless ``path`` is a readable regular file (a FIFO would block the reader forever)."""
    try:
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode):
            with open(path, "rb"):
                return
    except OSError as err:
        raise CheckpointError(f"cannot read {path.name}: {err.strerror}", path=path,
                              hint="Check that the file exists and is readable.") from None
    raise CheckpointError(f"{path.name} is not a regular file", path=path, hint="Point nextx at the checkpoint's files.")


def checked(tensor: torch.Tensor, key: str, path: Path) -> torch.Tensor:
    """The tensor, or CheckpointError if it holds NaN or Inf. Fast path: one sum in the tensor's own
    dtype (NaN and ±Inf propagate; no float32 copy of a bf16 embedding); an overflowing sum falls
    back to the element-wise check."""
    if tensor.is_floating_point() and not math.isfinite(float(tensor.sum())) \
            and not bool(torch.isfinite(tensor).all()):
        raise CheckpointError(
            f"tensor {key} contains NaN or Inf", path=path, hint="The run diverged or the file is damaged; drop this checkpoint."
        )
    return tensor


def cast_checked(tensor: torch.Tensor, dtype: torch.dtype, key: str, path: Path) -> torch.Tensor:
    """A finite tensor cast to ``dtype``; NextxError naming the overflow (not a diverged run) when its
    values do not fit there."""
    cast = tensor.to(dtype)
    if cast.is_floating_point() and not math.isfinite(float(cast.sum())) and not bool(torch.isfinite(cast).all()):
        largest = float(tensor.abs().max())
        raise NextxError(f"tensor {key} does not fit {str(dtype).removeprefix('torch.')}: its values reach "
                         f"{largest:.4g}", path=path, hint="Write --dtype float32 or bfloat16.")
    return cast


def has_full_weights(directory: Path) -> bool:
    return (directory / WEIGHTS_FILE).exists() or (directory / WEIGHTS_INDEX).exists()
