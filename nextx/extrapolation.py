"""`extrapolate`: apply a fitted predictor to the LAST checkpoint and write weights.

    Ŵ = W_T + offset + α·ΔŴ      (only trained modules change; everything else is copied as is)

`Extrapolation.save_adapter` writes a PEFT LoRA adapter that reproduces Ŵ exactly — the factors of
Ŵ − W₀ stacked (for NExt, B' = [B_T, α·σ̂·û/s], A' = [A_T; v̂ᵀ], rank r+1), with per-module
rank_pattern / alpha_pattern so PEFT's scaling is right — or, with ``rank=K``, its best rank-K
approximation (computed in factored form; the error is reported). `save_merged` streams
W₀ + (Ŵ − W₀) tensor by tensor into sharded safetensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

from nextx.errors import NextxError, PredictorError
from nextx.fitting import check_predictor_matches
from nextx.io.adapter import ADAPTER_CONFIG, KEY_PREFIX, adapter_config, lora_pair
from nextx.io.merged import plan_merged, set_config_dtype
from nextx.io.provenance import write_provenance
from nextx.io.run import Run
from nextx.io.shards import ShardedWriter
from nextx.io.tensors import cast_checked, checked
from nextx.io.write import atomic_output_dir, copy_model_files, overlaps, parse_size, write_json
from nextx.lowrank import FactoredUpdate, FactorStack, dense_of, factors_of, truncate, update_inner
from nextx.predictors import ModuleContext, Prediction, Predictor
from nextx.trajectory import Trajectories, module_trajectory

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Extrapolation:
    """A run, a fitted predictor and a coefficient α: the recipe for Ŵ, evaluated lazily per module."""

    run: Run
    predictor: Predictor
    coef: float
    provenance: dict = field(default_factory=dict)
    progress: Callable[[str], None] | None = None
    trajectories: Trajectories | None = None  # the run's, if already computed (saves recomputing them)
    cap: float | None = None  # trust region: per module, ‖Ŵ − W_T‖ ≤ cap · ‖W_T − W_{T−1}‖
    _predictions: dict[str, Prediction] | None = field(default=None, repr=False)

    @property
    def ahead(self) -> float:
        """Training steps past the last checkpoint that this jump stands for."""
        return self.predictor.ahead_for_coef(self.coef, self.run.steps)

    @property
    def target_step(self) -> float:
        return self.run.steps[-1] + self.ahead

    def module_update(self, name: str) -> tuple[FactorStack, FactoredUpdate]:
        """(the module's stack, Ŵ − W₀ for it), reading only that module (and only the checkpoints
        the method needs: NExt's triplets come from `trajectory_predictions`, so it reads just W_T)."""
        last = len(self.run.steps) - 1
        stack = self.run.deltas(name, lazy=True)
        if self.predictor.needs_trajectories:
            prediction = self.trajectory_predictions()[name]
        else:
            prediction = self.predictor.predict(ModuleContext(name, stack, self.run.steps, last))
        if self.progress:
            self.progress(name)
        update = prediction.at(self.coef, last)
        if self.cap is not None and last > 0:
            update = capped(stack, update, last, self.cap)
        return stack, update

    def trajectory_predictions(self) -> dict[str, Prediction]:
        """For methods that predict from rank-1 trajectories (NExt): every module's prediction in one
        batched call, from the known trajectories or from the last global/local triplets, computed
        here one module at a time (from the fit's last checkpoint on, when the predictor kept its
        signs there). Cached: writing adapter and merged outputs computes it once."""
        if self._predictions is None:
            last = len(self.run.steps) - 1
            contexts = []
            for name in self.run.modules:
                traj = self.trajectories.modules.get(name) if self.trajectories else None
                if traj is None:  # from the fit's last step if the predictor kept its signs there
                    start, reference = self.predictor.sign_reference(name, self.run.steps) or (0, None)
                    traj = module_trajectory(name, self.run.deltas(name, lazy=True), self.run.steps, 0,
                                             kinds=("global", "local"), local_last_only=True, start=start,
                                             reference=reference)
                contexts.append(ModuleContext(name, None, self.run.steps, last, traj))
            self._predictions = dict(zip(self.run.modules, self.predictor.predict_many(contexts), strict=True))
        return self._predictions

    def module_updates(self) -> Iterator[tuple[str, FactorStack, FactoredUpdate]]:
        """(module, its stack, Ŵ − W₀) for every trained module, one module in memory at a time."""
        for name in self.run.modules:
            yield name, *self.module_update(name)

    def _record(self, fmt: str, **extra) -> dict:
        return {
            "format": fmt, "source": self.run.source, "layout": self.run.layout, "steps": self.run.steps,
            "method": self.predictor.name, "ahead_steps": self.ahead, "coef": self.coef, "horizon": self.predictor.horizon,
            "horizon_steps": self.predictor.horizon_steps(self.run.steps), "target_step": self.target_step,
            "base": str(self.run.base) if self.run.base else None,
            "base_model_name_or_path": self.run.lora.base_model_name_or_path if self.run.lora else None,
            **self.provenance, **extra,
        }

    def check_output(self, out: str | Path, within_run: bool = False) -> None:
        check_output_path(self.run, out, within_run=within_run)

    # -- adapter --------------------------------------------------------------------------------
    def save_adapter(self, out: str | Path, *, rank: int | None = None, force: bool = False,
                     dtype: str = "float32", within_run: bool = False) -> Path:
        """A PEFT adapter reproducing Ŵ (exactly, or its best rank-``rank`` approximation)."""
        if self.run.kind != "lora":
            raise NextxError("an adapter can only be written for a LoRA run", hint="Use --format merged.")
        self.check_output(out, within_run=within_run)
        with atomic_output_dir(out, force=force) as tmp:
            errors = self._write_adapter(tmp, rank, DTYPES[dtype])
            extra = {"rank": rank, "max_rank_error": max(errors.values(), default=0.0)} if rank else {}
            write_provenance(tmp, self._record("adapter", **extra))
        return Path(out)

    def _write_adapter(self, directory: Path, rank: int | None, dtype: torch.dtype) -> dict[str, float]:
        settings = self.run.lora
        tensors, ranks, scalings, errors = {}, {}, {}, {}
        for name, stack, update in self.module_updates():
            left, right = factors_of(stack, update)
            if rank is not None and left.shape[1] > rank:
                left, right, errors[name] = truncate(left, right, rank)
            if left.shape[1] == 0:  # Ŵ = W₀: keep a rank-1 zero adapter so the module stays targeted
                left, right = torch.zeros(left.shape[0], 1, dtype=left.dtype), torch.zeros(1, right.shape[1], dtype=left.dtype)
            spec = self.run.modules[name]
            scaling = spec.scaling
            B, A = lora_pair(left, right, scaling, spec.transposed)
            A, B = A.to(dtype).contiguous(), B.to(dtype).contiguous()
            if not (torch.isfinite(A).all() and torch.isfinite(B).all()):
                raise NextxError(f"the extrapolated adapter of {name} is not finite in {str(dtype).removeprefix('torch.')}",
                                 path=self.run.source, hint="Jump less far (--ahead), or write --dtype float32.")
            a_key, b_key = (("lora_embedding_A", "lora_embedding_B") if spec.embedding
                            else ("lora_A.weight", "lora_B.weight"))
            tensors[f"{KEY_PREFIX}{name}.{a_key}"] = A
            tensors[f"{KEY_PREFIX}{name}.{b_key}"] = B
            ranks[name], scalings[name] = A.shape[0], scaling
        last = len(self.run.steps) - 1
        for key in self.run.passthrough_keys:  # modules_to_save and other extras: as in W_T
            tensors[key] = self.run.checkpoint_tensor(last, key).contiguous()
        save_file(tensors, directory / "adapter_model.safetensors", metadata={"format": "pt"})
        write_json(directory / ADAPTER_CONFIG, adapter_config(settings, ranks, scalings))
        return errors

    # -- merged weights -------------------------------------------------------------------------
    def save_merged(self, out: str | Path, *, base: str | Path | None = None, shard_size: str | int = "5GB",
                    dtype: str | None = None, force: bool = False, jumped_base: bool = False) -> Path:
        """Full weights (sharded safetensors + index, config and tokenizer from the base). With
        ``jumped_base`` (LoRA runs): the base a run resumes on with its own checkpoint (LoRA, optimizer,
        scheduler, RNG) unchanged, W₀' = W₀ + offset_T + (Ŵ − W_T), so that W₀' + s·B_T·A_T = Ŵ — each
        term added in float32 as an in-loop offset jump adds it (`nextx.jump`)."""
        base = Path(base) if base else self.run.base_model_path()
        if base is None:
            raise NextxError("merged output needs the base model W₀", hint="Pass --base PATH or a Hub id.")
        if jumped_base and self.run.kind != "lora":
            raise NextxError("--format base is for LoRA runs: a full-weight run resumes from --format merged")
        self.check_output(out)
        with atomic_output_dir(out, force=force) as tmp:
            self._write_merged(tmp, base, parse_size(shard_size), DTYPES[dtype] if dtype else None, jumped_base)
            copy_model_files(base, tmp)
            if dtype:
                set_config_dtype(tmp / "config.json", dtype)
            write_provenance(tmp, self._record("base" if jumped_base else "merged", shard_size=str(shard_size)))
        return Path(out)

    def _write_merged(self, directory: Path, base: Path, max_shard: int, dtype: torch.dtype | None,
                      jumped_base: bool = False) -> None:
        plan = plan_merged(self.run, base, dtype)
        with ShardedWriter(directory, plan.entries, max_shard) as writer:
            for entry in writer.planned:
                key = entry.name
                if key in plan.trained and jumped_base:
                    tensor = checked(self._jumped_base(plan.trained[key], plan.weights.get(key, check=False).float())
                                     .to(entry.dtype), key, base)
                elif key in plan.trained:  # W₀ + (Ŵ − W₀), summed in float32 and rounded once to the output dtype
                    stack, update = self.module_update(plan.trained[key])
                    w0, update_dense = plan.weights.get(key, check=False), dense_of(stack, update, torch.float32)
                    tensor = (w0.add_(update_dense) if w0.dtype == entry.dtype  # in place: one pass
                              else w0.float().add_(update_dense).to(entry.dtype))
                    tensor = checked(tensor, key, base)
                else:  # full runs' 1-D and other non-decomposed tensors as in W_T; the rest as in the base
                    tensor = plan.source(key).get(plan.stored(key), check=True)  # a NaN is refused, not copied
                    if tensor.dtype != entry.dtype:  # a down-cast may overflow to Inf
                        tensor = cast_checked(tensor, entry.dtype, key, base)
                writer.add(key, tensor)
            writer.close()

    def _jumped_base(self, name: str, w0: torch.Tensor) -> torch.Tensor:
        """W₀ + offset_T + (Ŵ − W_T) of one module, in float32 (in place on ``w0``)."""
        last = len(self.run.steps) - 1
        stack, update = self.module_update(name)
        terms = [self.run.checkpoint_offsets(last).get(name), factors_of(stack, update - FactoredUpdate({last: 1.0}))]
        for term in terms:
            if term is not None and term[0].shape[1]:
                w0.add_((term[0].double() @ term[1].double()).to(torch.float32))
        return w0

    def save(self, out: str | Path, *, fmt: str = "adapter", rank: int | None = None, base=None,
             shard_size="5GB", dtype: str | None = None, force: bool = False) -> dict[str, Path]:
        """Write ``fmt`` ∈ {adapter, merged, both}; both → OUT/adapter and OUT/merged."""
        if fmt == "adapter":
            return {"adapter": self.save_adapter(out, rank=rank, force=force, dtype=dtype or "float32")}
        if fmt in ("merged", "base"):
            return {fmt: self.save_merged(out, base=base, shard_size=shard_size, dtype=dtype, force=force,
                                          jumped_base=fmt == "base")}
        if fmt != "both":
            raise NextxError(f"unknown format {fmt!r}", hint="Choose adapter, merged, both or base.")
        self.check_output(out)
        with atomic_output_dir(out, force=force) as tmp:
            self.save_adapter(tmp / "adapter", rank=rank, dtype=dtype or "float32")
            self.save_merged(tmp / "merged", base=base, shard_size=shard_size, dtype=dtype)
            write_provenance(tmp, self._record("both"))  # a card at the top too
        return {"adapter": Path(out) / "adapter", "merged": Path(out) / "merged"}


def capped(stack, update: FactoredUpdate, last: int, cap: float) -> FactoredUpdate:
    """Ŵ − W₀ with the jump Ŵ − W_T scaled down (never up) so that ‖Ŵ − W_T‖_F ≤ cap · ‖W_T − W_{T−1}‖_F,
    the last checkpoint interval's real update (norms from the factors' Gram blocks)."""
    at_last = FactoredUpdate({last: 1.0})
    change = update - at_last
    interval = FactoredUpdate({last: 1.0, last - 1: -1.0})
    jump = math.sqrt(max(update_inner(stack, change, change), 0.0))
    limit = cap * math.sqrt(max(update_inner(stack, interval, interval), 0.0))
    if jump <= limit or jump == 0:
        return update
    return at_last + (limit / jump) * change


def check_output_path(run: Run, out: str | Path, *, within_run: bool = False) -> None:
    """NextxError if ``out`` is, is inside, or contains the run, one of its checkpoints or the base:
    an output must never replace or add to its own source. ``within_run``: the trainer's own export
    beside its checkpoints (inside the run's directory, never a checkpoint or the base)."""
    target = Path(out).resolve()
    own = Path(run.source).resolve() if within_run else None
    for source in run.protected_paths():
        if source == own and source in target.parents:
            continue
        if overlaps(target, source):
            raise NextxError("the output would overwrite or add to the run it is read from", path=out,
                             hint=f"Write outside {source} (e.g. -o {source.parent / (source.name + '-next')}).")


MAX_AHEAD_RUNS = 10  # a jump may reach at most this many times the run's length past its last checkpoint


def check_ahead(ahead: float, steps: list[int]) -> None:
    """PredictorError unless 0 ≤ ``ahead`` ≤ 10× the run's length (in training steps)."""
    limit = MAX_AHEAD_RUNS * steps[-1]
    if not math.isfinite(ahead) or ahead < 0:
        raise PredictorError(f"a jump of {ahead:g} steps ahead is not a forward jump",
                             hint=f"Pass --ahead N with N ≥ 0 steps past the last checkpoint (step {steps[-1]}).")
    if ahead > limit:
        raise PredictorError(
            f"a jump of {ahead:g} steps past step {steps[-1]} is more than {MAX_AHEAD_RUNS}× the run's length",
            hint=f"Jump at most {limit:g} steps ahead (--to-step ≤ {steps[-1] + limit:g}); the run has seen "
                 f"{steps[-1]} steps.")


def extrapolate(run: Run, predictor: Predictor, *, ahead: float | None = None, to_step: float | None = None,
                coef: float | None = None, provenance: dict | None = None, progress=None,
                traj: Trajectories | None = None, cap: float | None = None) -> Extrapolation:
    """Ŵ for the weights ``ahead`` training steps past the last checkpoint (or at step ``to_step``);
    ``coef`` gives the method's own α instead. ``traj``: the run's rank-1 trajectories if already
    computed (e.g. by `fit`). ``cap``: a trust region, per module ‖Ŵ − W_T‖ ≤ cap·‖W_T − W_{T−1}‖."""
    check_predictor_matches(predictor, run)
    if traj is not None and traj.steps != run.steps:
        raise PredictorError(f"the trajectories given are of steps {traj.steps}, the run has {run.steps}",
                             hint="Compute them on this run: nextx.trajectories(run).")
    if sum(x is not None for x in (ahead, to_step, coef)) != 1:
        raise PredictorError("give exactly one of --ahead, --to-step and --coef")
    if to_step is not None:
        predictor.coef_for_step(to_step, run.steps)  # refuses a step before the last checkpoint
        ahead = to_step - run.steps[-1]
    if coef is not None:
        if not math.isfinite(coef):
            raise PredictorError(f"coefficient α = {coef:g} is not a number", hint="Pass --ahead N (steps) instead.")
        ahead = predictor.ahead_for_coef(coef, run.steps)
    check_ahead(ahead, run.steps)
    coef = coef if coef is not None else predictor.coef_for_ahead(ahead, run.steps)
    if cap is not None and not (math.isfinite(cap) and cap >= 0):
        raise PredictorError(f"--cap {cap:g} is not a non-negative number", hint="Example: --cap 2 (two intervals' motion).")
    provenance = {**(provenance or {}), **({"cap": cap} if cap is not None else {})}
    return Extrapolation(run, predictor, float(coef), provenance, progress, traj, cap)
