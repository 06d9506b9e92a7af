"""Quiet third-party output: no per-load progress bars or advisory warnings in nextx's output."""

from __future__ import annotations


def quiet_transformers() -> None:
    """No per-load progress bars or advisory warnings from transformers / datasets in nextx's output."""
    import warnings

    import datasets
    import transformers

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl|peft)(\.|$)")
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
