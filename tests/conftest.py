"""Shared fixtures: a tiny real Llama base and real PEFT runs built once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from helpers import make_lora_run, save_base  # noqa: E402

STEPS = [10, 20, 30, 40, 50, 60, 70, 80]


@pytest.fixture(scope="session")
def base_model(tmp_path_factory) -> Path:
    return save_base(tmp_path_factory.mktemp("base") / "base")


@pytest.fixture(scope="session")
def trl_run(tmp_path_factory, base_model) -> Path:
    """An 8-checkpoint TRL-layout run of real PEFT adapters (r=4, alpha=8, all 7 linear modules)."""
    return make_lora_run(tmp_path_factory.mktemp("trl") / "run", base_model, STEPS)


@pytest.fixture(scope="session")
def nextx_cache(tmp_path_factory) -> Path:
    """A fresh NEXTX_CACHE for the session (the tiny model is built there, never in ~/.cache)."""
    path = tmp_path_factory.mktemp("nextx-cache")
    os.environ["NEXTX_CACHE"] = str(path)
    return path


@pytest.fixture
def cli_runner():
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture(scope="session")
def warm_tiny(nextx_cache):
    """The embedded default: SFT-warmed tiny model (built once per session), so GRPO has signal."""
    pytest.importorskip("trl")
    from nextx.train.tiny_model import tiny_model_path

    return tiny_model_path("addition")


@pytest.fixture(scope="session")
def tiny_grpo_run(tmp_path_factory, warm_tiny) -> Path:
    """4 real GRPO steps (TRL + PEFT, lr 3e-3) on the warmed tiny model, a checkpoint every step."""
    from nextx.train.config import GRPORunConfig
    from nextx.train.grpo import train

    out = tmp_path_factory.mktemp("grpo") / "run"
    config = GRPORunConfig(output_dir=str(out), model=str(warm_tiny), task="addition", steps=4, save_every=1,
                           prompts_per_step=4, num_generations=4, lora_r=4, lora_alpha=8, learning_rate=3e-3)
    return train(config, log=lambda m: None).path


@pytest.fixture(scope="session")
def dgo_tiny(nextx_cache):
    """DGO's packaged tiny model (reads experience lines); nothing is built."""
    pytest.importorskip("trl")
    from nextx.train.tiny_model import ASSETS, tiny_model_path

    path = tiny_model_path("addition", experiences=True)
    assert path.parent == ASSETS
    return path
