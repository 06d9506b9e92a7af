"""Provenance beside every output: nextx.json (machine-readable) and a short README model card."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from nextx._version import __version__
from nextx.io.write import write_json


def write_provenance(out: Path, record: dict) -> None:
    """nextx.json and README.md describing how ``out`` was made."""
    record = {"nextx_version": __version__, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **record}
    write_json(out / "nextx.json", record)
    backtest = record.get("backtest") or {}
    lines = [
        f"# Extrapolated with nextx {__version__}",
        "",
        f"Weights predicted by `{record['method']}` from the run `{record['source']}` "
        f"(checkpoints at steps {', '.join(map(str, record['steps']))}), applied to the last checkpoint "
        f"(step {record['steps'][-1]}), {record.get('ahead_steps', 0):.4g} training steps ahead "
        f"(the method's α = {record['coef']:.4g})"
        + (f", i.e. the predicted weights at step ≈ {record['target_step']:.0f}." if record.get("target_step") else "."),
        "",
        "Ŵ = W_T + α·ΔŴ; only trained modules change. NExt: arXiv 2604.11446.",
    ]
    if backtest:
        lines += ["", "Backtest on the run's own held-out checkpoints (relative Frobenius error, lower is better):", ""]
        lines += [f"- {name}: {m['rel_error']:.4g} (gain over stay {m['gain_over_stay']:+.1%})"
                  for name, m in backtest.get("methods", {}).items()]
    selection = record.get("selection")
    if selection:
        lines += ["", f"Chosen by task reward ({selection['scorer']}): it beat staying at step {record['steps'][-1]} "
                      f"by more than {selection['min_se']:g} paired standard errors; every candidate is in nextx.json."]
    lines += ["", "See nextx.json for every setting."]
    (out / "README.md").write_text(_card_header(record) + "\n".join(lines) + "\n")


def _card_header(record: dict) -> str:
    """The model card's YAML metadata, written by huggingface_hub (base_model only when it is a Hub id)."""
    from huggingface_hub import ModelCardData

    base = record.get("base_model_name_or_path")
    hub_id = base if isinstance(base, str) and base.count("/") == 1 and not Path(base).exists() else None
    data = ModelCardData(library_name="peft" if record.get("format") == "adapter" else "transformers",
                         tags=["nextx", "rlvr", "extrapolation"], base_model=hub_id)
    return f"---\n{data.to_yaml()}\n---\n"
