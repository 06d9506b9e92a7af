"""Jumps in several processes (torchrun, 2 ranks, gloo on CPU): rank 0 decides, every rank applies
the identical change — weights bitwise equal across ranks; only the world process zero writes."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("peft")

WORKER = Path(__file__).parent / "ddp_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*args, timeout=240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), str(WORKER), *map(str, args)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _needs(wrap: str):
    if wrap.startswith("zero"):
        pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install 'nextx[deepspeed]')")


SLOW = pytest.mark.slow  # ~15-20 s each: the suite runs DDP; `pytest -m slow` runs FSDP and ZeRO too


@pytest.mark.parametrize("wrap", ["engine", *(pytest.param(w, marks=SLOW) for w in ("fsdp1", "fsdp2", "zero2", "zero3",
                                                                                      "zero3r"))])
def test_ranks_apply_rank_zeros_decision_and_stay_bitwise_equal(tmp_path, wrap):
    """DDP (plain replicas), FSDP1 (flat shards, summon_full_params), FSDP2 (DTensor shards), DeepSpeed
    ZeRO-2 and ZeRO-3 (fp32 masters, partitioned frozen weights; offset and refactor jumps): every rank
    holds the jump rank 0 decided, bit for bit, and it survives the next optimizer step."""
    _needs(wrap)
    _torchrun(wrap, tmp_path)
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])  # bitwise, every step
    for key in [k for k in ranks[0] if k.startswith("after2|")]:  # rank 0's α = 1, not rank 1's 3
        name = key.split("|", 1)[1]
        expected = 2 * ranks[0][f"2|{name}"] - ranks[0][f"1|{name}"]
        if wrap == "zero3r":  # refactored into the rank-4 LoRA: the best rank-4 approximation of Ŵ − W₀
            assert float((ranks[1][key] - expected).norm()) < 0.5 * float((ranks[0][f"2|{name}"] - expected).norm())
        else:
            assert torch.allclose(ranks[1][key], expected, atol=1e-6)
        # the next step starts from the jump (a lost edit would put step 3 back near step 2's weights)
        moved_from_jump = float((ranks[0][f"3|{name}"] - ranks[0][key]).norm())
        assert moved_from_jump < float((ranks[0][f"3|{name}"] - ranks[0][f"2|{name}"]).norm()), name


def test_trl_ddp_run_jumps_identically_on_both_ranks_and_writes_once(tmp_path, warm_tiny):
    result = _torchrun("trl", tmp_path, warm_tiny, timeout=420)
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    run = tmp_path / "run"
    assert [(run / f"checkpoint-{s}" / "nextx_base_offset.safetensors").exists() for s in (1, 2, 3, 4)] == \
        [False, False, True, True]
    jump_lines = [line for line in result.stdout.splitlines() if ": jump (" in line]
    assert len(jump_lines) == 2 and all(line.startswith("rank 0: ") for line in jump_lines)  # logged once, by rank 0
    from nextx import load_run

    assert load_run(run).steps == [1, 2, 3, 4] and (run / "final-adapter" / "adapter_config.json").is_file()
