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
