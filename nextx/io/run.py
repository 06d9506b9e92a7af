"""`Run`: the checkpoints of one RLVR run and lazy, per-module access to their weight updates.

``run.deltas(name)`` reads one module across all checkpoints and returns its global deltas
ΔWᵢ = Wᵢ − W₀ in factored form (LoRA: Lᵢ = sᵢ·Bᵢ, Rᵢ = Aᵢ) or dense (full weights), so peak memory
is one module across all checkpoints, never the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from nextx.errors import CheckpointError, RunLayoutError
from nextx.io.adapter import ADAPTER_STEM, LoraSettings, lora_factors, lora_modules
from nextx.io.discover import (
    Checkpoint,
    discover_checkpoints,
    explicit_checkpoints,
    lora_settings_for,
)
from nextx.io.hub import is_hub_url, resolve_hub_run, resolve_model
from nextx.io.module_checks import check_base_shapes, check_same_modules
from nextx.io.offsets import check_offsets_present, read_offsets
from nextx.io.tensors import ShardedSafetensors, has_full_weights, open_tensor_file
from nextx.lowrank import DenseStack, FactorStack


@dataclass(frozen=True)
class ModuleSpec:
    """A trained 2-D weight: its module path, stored shape, LoRA rank and scaling (None if full)."""

    name: str
    shape: tuple[int, int]
    rank: int | None = None
    scaling: float | None = None
    keys: tuple[str, ...] = ()  # (lora_A key, lora_B key) or (weight key,)
    transposed: bool = False  # ΔW = s·(B·A)ᵀ in the stored weight: fan_in_fan_out (Conv1D) or an Embedding LoRA
    embedding: bool = False  # PEFT's lora_embedding_A / lora_embedding_B


@dataclass
class Run:
    """An RLVR run: layout, checkpoints (sorted by real step) and the modules it trains."""

    source: str
    layout: str
    kind: str  # "lora" or "full"
    checkpoints: list[Checkpoint]
    modules: dict[str, ModuleSpec]
    lora: LoraSettings | None = None
    base: Path | None = None
    allow_pickle: bool = False
    passthrough_keys: list[str] = field(default_factory=list)  # tensors copied as they are (modules_to_save, 1-D)
    _files: dict = field(default_factory=dict, repr=False, compare=False)  # checkpoint path → tensor file

    @property
    def steps(self) -> list[int]:
        return [c.step for c in self.checkpoints]

    def _file(self, checkpoint: Checkpoint):
        """The checkpoint's tensor file(s); headers parsed once and cached, tensors read on demand."""
        if checkpoint.path not in self._files:
            if self.kind == "lora":
                self._files[checkpoint.path] = open_tensor_file(checkpoint.path, ADAPTER_STEM,
                                                                allow_pickle=self.allow_pickle)
            else:
                self._files[checkpoint.path] = ShardedSafetensors(checkpoint.path)
        return self._files[checkpoint.path]

    def _offsets(self, checkpoint: Checkpoint) -> dict:
        """The checkpoint's accumulated base offsets (module → (L, R)), read once."""
        key = ("offsets", checkpoint.path)
        if key not in self._files:
            offsets = read_offsets(checkpoint.path) if checkpoint.kind == "lora" else {}
            for name, (left, right) in offsets.items():
                spec = self.modules.get(name)
                if spec is None or (left.shape[0], right.shape[1]) != spec.shape:
                    raise CheckpointError(
                        f"base offset of {name} does not fit the adapter ("
                        + ("no such module" if spec is None else f"{left.shape[0]}×{right.shape[1]}, the weight is "
                                                                 f"{spec.shape[0]}×{spec.shape[1]}") + ")",
                        path=checkpoint.path, hint="The offset file belongs to another run: remove this checkpoint.")
            self._files[key] = offsets
        return self._files[key]

    def _lora_tensors(self, checkpoint: Checkpoint, spec: ModuleSpec, check: bool = False) -> list[torch.Tensor]:
        """(A, B) of a module at a checkpoint, read from its file (``check``: NaN/Inf → CheckpointError)."""
        return self._file(checkpoint).get_many(list(spec.keys), check=check)

    def protected_paths(self) -> list[Path]:
        """Directories an output must never be written into, over or around: the run's own directory
        (for local runs), every checkpoint and the base model."""
        paths = [c.path for c in self.checkpoints]
        if self.base is not None:
            paths.append(Path(self.base))
        if not str(self.source).startswith("hf://") and Path(self.source).is_dir():
            paths.append(Path(self.source))
        linked = [f for p in paths if p.is_dir() for f in p.iterdir() if f.is_symlink()]  # files held elsewhere
        return [p.resolve() for p in [*paths, *linked]]

    def prefix(self, count: int) -> Run:
        """The same run cut after its first ``count`` checkpoints (file handles shared)."""
        return replace(self, checkpoints=self.checkpoints[:count], _files=self._files)

    def base_model_path(self) -> Path | None:
        """W₀'s directory: ``--base``, else a LoRA run's base_model_name_or_path (a local dir, or a Hub
        id fetched into the HF cache, as PEFT would)."""
        if self.base is not None:
            return Path(self.base)
        named = (self.lora.raw.get("base_model_name_or_path") if self.lora is not None else None) or None
        if not named:
            return None
        key = ("base_model", named)  # resolved once: a Hub id means a snapshot lookup
        if key not in self._files:
            self._files[key] = resolve_model(named)
        path = self._files[key]
        return path if path.is_dir() else None

    def deltas(self, name: str, *, lazy: bool = False, device: str | torch.device = "cpu") -> FactorStack | DenseStack:
        """Global deltas ΔWᵢ = Wᵢ − W₀ of one module at every checkpoint (index i ↔ checkpoints[i]).

        ``lazy`` (LoRA runs): checkpoint i is read only when a computation first needs it, so a
        method that looks at the last two checkpoints reads two files, not the whole run.
        ``device`` (LoRA runs): where the factor products run (`FactorStack`); full weights stay on the CPU.
        """
        spec = self.modules[name]
        if self.kind == "lora":
            if lazy:
                return FactorStack.lazy(len(self.checkpoints), lambda i: self._factors(spec, [i])[0], device=device)
            pairs = self._factors(spec, range(len(self.checkpoints)))
            return FactorStack([left for left, _ in pairs], [right for _, right in pairs], device=device)
        base = ShardedSafetensors(self.base).get(spec.keys[0]).to(torch.float32)
        return DenseStack([self._file(c).get(spec.keys[0]).to(torch.float32) - base for c in self.checkpoints])

    def _factors(self, spec: ModuleSpec, indices) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(Lᵢ, Rᵢ) in float64 for the listed checkpoints, with one NaN/Inf check over all of them."""
        checkpoints = [self.checkpoints[i] for i in indices]
        pairs = []
        for checkpoint in checkpoints:
            A, B = self._lora_tensors(checkpoint, spec)
            left, right = lora_factors(B, A, spec.scaling, spec.transposed)
            offset = self._offsets(checkpoint).get(spec.name)
            if offset is not None:  # jumps folded into the base (NExtCallback(apply="offset")): W₀ + L·R + s·B·A
                left, right = torch.cat([left, offset[0].to(left.dtype)], 1), torch.cat([right, offset[1].to(right.dtype)], 0)
            pairs.append((left, right))
        total = torch.stack([t.sum() for pair in pairs for t in pair]).sum()
        if not bool(torch.isfinite(total)):
            for checkpoint in checkpoints:
                self._lora_tensors(checkpoint, spec, check=True)  # raises CheckpointError naming file and tensor
            raise CheckpointError(f"module {spec.name}: the factors overflow float64", path=self.source)
        return pairs

    def checkpoint_file(self, index: int):
        """The tensor file(s) of checkpoint ``index`` (for writers that copy untouched tensors)."""
        return self._file(self.checkpoints[index])

    def checkpoint_offsets(self, index: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The base offsets folded in by checkpoint ``index`` (module → (L, R); {} for none)."""
        return self._offsets(self.checkpoints[index])

    def checkpoint_tensor(self, index: int, key: str) -> torch.Tensor:
        """One raw tensor of checkpoint ``index``."""
        return self.checkpoint_file(index).get(key)

    def describe(self) -> dict:
        """Summary used by `nextx inspect` and provenance files."""
        ranks = sorted({m.rank for m in self.modules.values() if m.rank is not None})
        return {
            "source": self.source,
            "layout": self.layout,
            "kind": self.kind,
            "steps": self.steps,
            "num_modules": len(self.modules),
            "lora_rank": ranks[0] if len(ranks) == 1 else ranks or None,
            "lora_alpha": self.lora.lora_alpha if self.lora else None,
            "use_rslora": self.lora.use_rslora if self.lora else None,
            "target_modules": sorted({n.rsplit(".", 1)[-1] for n in self.modules}),
            "base": str(self.base) if self.base else None,
            "offset_steps": [c.step for c in self.checkpoints if c.kind == "lora" and self._offsets(c)],
        }


def load_run(
    source: str | Path,
    *,
    layout: str = "auto",
    base: str | Path | None = None,
    lora_alpha: float | None = None,
    checkpoints: Mapping[int, str | Path] | list[tuple[int, str | Path]] | None = None,
    allow_pickle: bool = False,
) -> Run:
    """Discover the checkpoints of a run and its modules. ``source``: a directory, or
    ``hf://OWNER/REPO[@REVISION][/SUBDIR]``; or explicit (step, path) pairs in ``checkpoints``."""
    if is_hub_url(source) and not checkpoints:
        root, per_step, _ = resolve_hub_run(str(source))
        if per_step:
            found = explicit_checkpoints(list(per_step.items()))
            return _load(str(source), "hub", found, base, lora_alpha, allow_pickle)
        source = root
    if checkpoints:
        pairs = list(checkpoints.items()) if isinstance(checkpoints, Mapping) else list(checkpoints)
        found = explicit_checkpoints(pairs)
        layout, source = "explicit", str(source or found[0].path.parent)
    else:
        if source is None:
            raise RunLayoutError("no run given", hint="Pass a run directory or --checkpoint STEP=PATH.")
        layout, found = discover_checkpoints(Path(source), layout)
    return _load(str(source), layout, found, base, lora_alpha, allow_pickle)


def _load(source: str, layout: str, found: list[Checkpoint], base, lora_alpha, allow_pickle) -> Run:
    base_path = resolve_model(base) if base else None
    if base_path is not None and not has_full_weights(base_path):
        raise RunLayoutError("base has no model.safetensors or model.safetensors.index.json", path=base_path)
    if found[0].kind == "lora":
        return _load_lora_run(source, layout, found, base_path, lora_alpha, allow_pickle)
    return _load_full_run(source, layout, found, base_path)


def _load_lora_run(source, layout, found, base, lora_alpha, allow_pickle) -> Run:
    check_offsets_present(Path(source) if layout != "hub" and Path(source).is_dir() else None, found)
    run = Run(source, layout, "lora", found, {}, base=base, allow_pickle=allow_pickle)
    reference = None
    for checkpoint in found:
        settings = lora_settings_for(checkpoint, lora_alpha)
        tensor_file = run._file(checkpoint)
        names, other = lora_modules(tensor_file.keys(), tensor_file.path)
        specs = {}
        for name, keys in sorted(names.items()):
            a_shape, b_shape = tensor_file.shape(keys["A"]), tensor_file.shape(keys["B"])
            if 0 in (*a_shape, *b_shape):
                raise CheckpointError(f"module {name}: its LoRA factors are empty (lora_A {list(a_shape)}, lora_B "
                                      f"{list(b_shape)})", path=checkpoint.path,
                                      hint="DeepSpeed ZeRO-3 saved them partitioned: train with "
                                           '"stage3_gather_16bit_weights_on_model_save": true.')
            if len(a_shape) != 2 or len(b_shape) != 2:
                raise CheckpointError(f"module {name}: LoRA factors must be 2-D, got lora_A {list(a_shape)} and "
                                      f"lora_B {list(b_shape)}", path=checkpoint.path)
            for key in (keys["A"], keys["B"]):
                dtype = tensor_file.dtype(key)
                if not dtype.is_floating_point or dtype.itemsize < 2:
                    raise CheckpointError(f"{key} is {str(dtype).removeprefix('torch.')}, not a float16/bfloat16/"
                                          "float32/float64 LoRA factor", path=checkpoint.path,
                                          hint="Dequantize the adapter before reading it with nextx.")
            rank = a_shape[0]
            if b_shape[1] != rank or rank != settings.rank_for(name):
                raise CheckpointError(
                    f"module {name}: lora_A is {list(a_shape)}, lora_B is {list(b_shape)}, config rank is {settings.rank_for(name)}",
                    path=checkpoint.path,
                )
            embedding = keys.get("kind") == "embedding"  # PEFT's Embedding LoRA: ΔW = s·(B·A)ᵀ, whatever fan_in_fan_out
            transposed = embedding or settings.fan_in_fan_out
            shape = (a_shape[1], b_shape[0]) if transposed else (b_shape[0], a_shape[1])
            specs[name] = ModuleSpec(name, shape, rank, settings.scaling_for(name), (keys["A"], keys["B"]), transposed,
                                     embedding)
        if not specs:
            raise CheckpointError("adapter holds no LoRA tensors", path=checkpoint.path)
        if reference is None:
            reference = (checkpoint, specs, settings)
            run.modules, run.lora, run.passthrough_keys = specs, settings, other
            continue
        check_same_modules(reference[0], reference[1], checkpoint, specs)
    if base is not None:
        check_base_shapes(run, base)
    return run


def _load_full_run(source, layout, found, base) -> Run:
    if base is None:
        raise RunLayoutError(
            "full-weight checkpoints need the initial weights W₀", path=source, hint="Pass --base PATH (the model RL started from)."
        )
    base_weights = ShardedSafetensors(base)
    base_keys = base_weights.keys()
    files = [ShardedSafetensors(c.path) for c in found]
    for checkpoint, weights in zip(found, files, strict=True):
        if set(weights.keys()) != set(base_keys):
            odd = sorted(set(weights.keys()) ^ set(base_keys))[0]
            raise CheckpointError(f"tensor {odd} is in only one of the checkpoint and the base", path=checkpoint.path)
        for key in base_keys:
            if weights.shape(key) != base_weights.shape(key):
                raise CheckpointError(
                    f"shape of {key} is {list(weights.shape(key))} but {list(base_weights.shape(key))} in the base",
                    path=checkpoint.path,
                )
    modules, untrained = {}, []
    for key in base_keys:
        w0 = base_weights.get(key)
        changed = any(not torch.equal(w0, weights.get(key)) for weights in files)
        if changed and w0.ndim == 2 and w0.is_floating_point():
            name = key.removesuffix(".weight")
            modules[name] = ModuleSpec(name, tuple(w0.shape), keys=(key,))
        else:
            untrained.append(key)
    if not modules:
        raise CheckpointError("no 2-D weight differs from the base in any checkpoint", path=source,
                              hint="Check that --base is the model the run started from.")
    return Run(source, layout, "full", found, modules, base=base, passthrough_keys=untrained)
