"""In-loop jumps across ranks: the worker of the multi-process tests and of `bench/multi_gpu.py`.

    python -m torch.distributed.run --nproc_per_node 2 -m nextx.studies.ranks MODE OUT [MODEL]

MODE: engine | fsdp1 | fsdp2 | zero2 | zero3 | zero3r | trl | resume-fsdp1 | resume-fsdp2 | resume-zero2 |
resume-zero3. On CPU the ranks
talk over gloo; with
NEXTX_RANKS_DEVICE=cuda each rank uses its own GPU (cuda:LOCAL_RANK) and NCCL.

engine, fsdp1, fsdp2: a PEFT model (plain as under DDP, or sharded by FSDP1 / FSDP2) trained
identically on each rank, with a JumpEngine whose settings differ by rank: rank 0's decision must
be applied on every rank.
trl: nextx's GRPO trainer (TRL, DDP) with offset jumps in the loop.
resume-*: a sharded engine run, whole and resumed from its checkpoint-3 (`resumed_run`).
Each rank writes its final effective weights to OUT/rank<r>.safetensors."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from nextx.io.offsets import write_jump_log


def _device() -> torch.device:
    if os.environ.get("NEXTX_RANKS_DEVICE") == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _backend() -> str:
    return "nccl" if _device().type == "cuda" else "gloo"


def effective(model) -> dict[str, torch.Tensor]:
    """base + s·B·A of every LoRA layer, whole (ZeRO-3's partitions gathered)."""
    import contextlib

    from nextx.jump.live import lora_layers, whole

    zero3 = any(hasattr(p, "ds_id") for p in model.parameters())
    if zero3:
        import deepspeed

        context = deepspeed.zero.GatheredParameters(list(model.parameters()))
    else:
        context = contextlib.nullcontext()
    read = (lambda p: p) if zero3 else whole
    with context:
        return {n: (read(m.base_layer.weight).detach().double() + m.scaling["default"]
                    * read(m.lora_B["default"].weight).detach().double() @ read(m.lora_A["default"].weight).detach().double())
                .contiguous().clone() for n, m in lora_layers(model).items()}


def _wrapped(model, wrap: str):
    """The model as DDP trains it (unwrapped here), sharded by FSDP1 / FSDP2 (fully_shard per layer), or
    under DeepSpeed ZeRO-2 / ZeRO-3 (returns the engine; the PEFT model is ``engine.module``)."""
    if wrap.startswith("zero"):
        import deepspeed

        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        config = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": int(wrap[4])},
                  "zero_force_ds_cpu_optimizer": False}
        return deepspeed.initialize(model=model, optimizer=optimizer, config=config)[0]
    if wrap == "fsdp1":
        from torch.distributed.fsdp import FullyShardedDataParallel

        return FullyShardedDataParallel(model, device_id=_device(), use_orig_params=True)
    if wrap == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        for layer in model.base_model.model.model.layers:
            fully_shard(layer)
        return fully_shard(model)
    return model


def engine_run(out: Path, wrap: str = "none") -> None:
    """Identical training on every rank; the jump settings differ by rank (rank 1 would jump 3×
    further): rank 0's decision must land on every rank, through whatever shards the weights, and stay
    there through the next step. ``zero3r``: ZeRO-3 with refactor jumps (LoRA and Adam rewritten)."""
    from peft import LoraConfig, get_peft_model

    from nextx.jump import JumpEngine, JumpPace, PeftLiveModel
    from nextx.studies.dynamics import build_tiny_model

    if wrap.startswith("zero"):
        import deepspeed

        deepspeed.init_distributed(dist_backend=_backend())
    else:
        dist.init_process_group(_backend())
    if _device().type == "cuda":
        torch.cuda.set_device(_device())
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = _wrapped(get_peft_model(build_tiny_model(0).to(_device()),
                                    LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"])), wrap)
    peft_model = model.module if wrap.startswith("zero") else model
    apply = "refactor" if wrap == "zero3r" else "offset"
    engine = JumpEngine(JumpPace(at=2, every=2), method="linear", ahead=1 if rank == 0 else 3, horizon=1, apply=apply)
    live = PeftLiveModel(peft_model)
    snapshots = {}
    for step in range(1, 6):
        _train_step(model, peft_model, live, wrap, step)
        with live.gathered():  # FSDP1: whole parameters inside (and written back)
            snapshots[step] = effective(peft_model)
            engine.observe(step, live)
            engine.maybe_jump(step, 6, live)
            snapshots[f"after{step}"] = effective(peft_model)
    save_file({f"{k}|{n}": t.cpu() for k, ws in snapshots.items() for n, t in ws.items()}, out / f"rank{rank}.safetensors")
    dist.destroy_process_group()


def resumed_run(out: Path, wrap: str) -> None:
    """Resume under FSDP or DeepSpeed at torch level: an engine run (jumps at every step from 2,
    checkpoints as `NExtCallback` writes them: LoRA factors, base offsets and their history, the jump
    log), then the same run resumed from its checkpoint-3 in a fresh, freshly wrapped model — W₀ as
    loaded, the checkpoint's LoRA (ZeRO: DeepSpeed's own checkpoint, LoRA and Adam, frozen base excluded
    as the Trainer saves PEFT runs), and `nextx.jump.resume.restore` for the offsets, history and jump
    record. Each rank writes both runs' final weights (``whole|…``, ``resumed|…``) to OUT/rank<r>.safetensors."""
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file

    from nextx.jump import JumpEngine, JumpPace, PeftLiveModel
    from nextx.jump.resume import restore
    from nextx.studies.dynamics import build_tiny_model

    zero = wrap.startswith("zero")
    if zero:
        import deepspeed

        deepspeed.init_distributed(dist_backend=_backend())
    else:
        dist.init_process_group(_backend())
    rank, run_dir, final = dist.get_rank(), out / "run", {}
    for stage in ("whole", "resumed"):
        torch.manual_seed(0)
        model = _wrapped(get_peft_model(build_tiny_model(0).to(_device()),
                                        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"])), wrap)
        peft_model = model.module if zero else model
        live, engine, first = PeftLiveModel(peft_model), JumpEngine(JumpPace(at=2, every=1), method="linear",
                                                                     ahead=1, horizon=1), 1
        if stage == "resumed":
            if zero:  # the engine restores LoRA and Adam; nextx restores what the engine does not hold
                model.load_checkpoint(str(run_dir / "checkpoint-3" / "deepspeed"), load_module_strict=False)
            saved = load_file(run_dir / "checkpoint-3" / "adapter_model.safetensors")
            with live.gathered():
                if not zero:
                    for name in live.specs():
                        live.write_factors(name, saved[f"base_model.model.{name}.lora_A.weight"],
                                           saved[f"base_model.model.{name}.lora_B.weight"])
                restore(engine, run_dir, 3, live, 6, writer=False)
            first = 4
        for step in range(first, 6):
            _train_step(model, peft_model, live, wrap, step)
            if zero and stage == "whole":  # a collective: every rank
                model.save_checkpoint(str(run_dir / f"checkpoint-{step}" / "deepspeed"), exclude_frozen_parameters=True)
            with live.gathered():
                factors = {name: live.factors(name) for name in live.specs()}  # FSDP2, ZeRO-3: collectives
                if stage == "whole" and rank == 0:
                    _save_checkpoint(run_dir / f"checkpoint-{step}", peft_model, factors, engine)
                engine.observe(step, live)
                if engine.maybe_jump(step, 6, live) is not None and stage == "whole" and rank == 0:
                    write_jump_log(run_dir, engine.jumps)
        with live.gathered():
            final.update({f"{stage}|{n}": t.cpu() for n, t in effective(peft_model).items()})
        dist.barrier()  # rank 0's checkpoints are complete before the resumed stage reads them
    save_file(final, out / f"rank{rank}.safetensors")
    dist.destroy_process_group()


def _save_checkpoint(path: Path, model, factors: dict, engine) -> None:
    """What the trainer and `NExtCallback` write at a save: the adapter (whole factors, PEFT's names and
    config) and, once jumps moved the base, its offsets and their history."""
    from nextx.io.offsets import write_base_history, write_offsets

    path.mkdir(parents=True, exist_ok=True)  # DeepSpeed's own checkpoint may be there already
    save_file({f"base_model.model.{name}.lora_{f}.weight": t.detach().cpu().contiguous()
               for name, pair in factors.items() for f, t in zip("AB", pair, strict=True)},
              path / "adapter_model.safetensors")
    getattr(model, "module", model).peft_config["default"].save_pretrained(path)
    if engine.offsets:
        write_offsets(path, engine.offsets, engine.made())
        write_base_history(path, engine.additions)


def _train_step(model, peft_model, live, wrap: str, step: int) -> None:
    """A real step (DeepSpeed: forward, backward, its optimizer) or a fixed move of the B factors."""
    if wrap.startswith("zero"):
        ids = torch.arange(8, device=_device()).unsqueeze(0)
        model.backward(model(input_ids=ids, labels=ids).loss)
        model.step()
        return
    with live.gathered(), torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.add_(0.01 * step)


def trl_run(out: Path, model_path: str, stage: str = "whole") -> None:
    """nextx's GRPO trainer (DDP) with offset jumps at steps 2, 3 and 4 of 5. ``stage``: whole; cut (stopped
    after the save at step 3); resumed (the cut run continued from its checkpoint-3). Each rank writes the
    weights step 4 trains from (``rank<r>-at3``) and its final ones (``rank<r>``)."""
    from transformers import TrainerCallback

    from nextx.train.config import GRPORunConfig
    from nextx.train.grpo import train

    class Dump(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if stage == "cut" and state.global_step == 3:
                control.should_training_stop = True
            return control

        def on_step_begin(self, args, state, control, model=None, **kwargs):
            if state.global_step == 3:  # the weights training continues from after the jump at step 3
                save_file(effective(model), out / f"rank{os.environ['RANK']}-at3.safetensors")

        def on_train_end(self, args, state, control, model=None, **kwargs):
            save_file(effective(model), out / f"rank{os.environ['RANK']}.safetensors")

    config = GRPORunConfig(output_dir=str(out / "run"), model=model_path, task="addition", steps=5, save_every=1,
                           prompts_per_step=4, num_generations=4, lora_r=4, lora_alpha=8, learning_rate=3e-3,
                           next_at=2, next_every=1,
                           next_method="linear", next_ahead=1, next_horizon=1, save_state=True)
    train(config, callbacks=[Dump()], log=lambda m: print(f"rank {os.environ['RANK']}: {m}", flush=True),
          resume=stage == "resumed")


def check_ranks(out: Path, wrap: str) -> list[str]:
    """What is wrong with an `engine_run` (an empty list when nothing is): the ranks' weights differ; the
    jump after step 2 is not rank 0's (α = 1: 2·W₂ − W₁; refactor: its best rank-4 approximation);
    the next step did not start from the jump."""
    from safetensors.torch import load_file

    ranks = [load_file(out / f"rank{r}.safetensors") for r in (0, 1)]
    problems = [f"rank 1 differs from rank 0 at {k}" for k in ranks[0] if not torch.equal(ranks[0][k], ranks[1].get(k))]
    for key in [k for k in ranks[0] if k.startswith("after2|")]:
        name = key.split("|", 1)[1]
        expected = 2 * ranks[0][f"2|{name}"] - ranks[0][f"1|{name}"]
        error = float((ranks[1][key] - expected).norm())
        if (error >= 0.5 * float((ranks[0][f"2|{name}"] - expected).norm()) if wrap == "zero3r"
                else not torch.allclose(ranks[1][key], expected, atol=1e-6)):
            problems.append(f"{name}: the jump is not rank 0's (error {error:.3g})")
        if float((ranks[0][f"3|{name}"] - ranks[0][key]).norm()) >= float((ranks[0][f"3|{name}"] - ranks[0][f"2|{name}"]).norm()):
            problems.append(f"{name}: step 3 did not start from the jump (the edit was lost)")
    return problems


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "trl":
        trl_run(out, sys.argv[3], *sys.argv[4:5])
    elif mode.startswith("resume-"):
        resumed_run(out, mode.removeprefix("resume-"))
    else:
        engine_run(out, {"engine": "none"}.get(mode, mode))
