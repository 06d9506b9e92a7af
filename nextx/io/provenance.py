"""Provenance beside every output: nextx.json (machine-readable) and a short README model card."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from nextx import __version__
from nextx.io.write import write_json


def write_provenance(out: Path, record: dict) -> None:
    """nextx.json and README.md describing how ``out`` was made."""
    record = {"nextx_version": __version__, "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **record}
    write_json(out / "nextx.json", record)
    backtest = record.get("backtest") or {}
    lines = [
        "---",
        "library_name: peft" if record.get("format") == "adapter" else "library_name: transformers",
        "tags: [nextx, rlvr, extrapolation]",
        "---",
        f"# Extrapolated with nextx {__version__}",
        "",
        f"Weights predicted by `{record['method']}` from the run `{record['source']}` "
        f"(checkpoints at steps {', '.join(map(str, record['steps']))}), applied to the last checkpoint "
        f"(step {record['steps'][-1]}) with coefficient α = {record['coef']:.4g}"
        + (f", i.e. the predicted weights at step ≈ {record['target_step']:.0f}." if record.get("target_step") else "."),
        "",
        "Ŵ = W_T + α·ΔŴ; only trained modules change. NExt: arXiv 2604.11446.",
    ]
    if backtest:
        lines += ["", "Backtest on the run's own held-out checkpoints (relative Frobenius error, lower is better):", ""]
        lines += [f"- {name}: {m['rel_error']:.4g} (gain over stay {m['gain_over_stay']:+.1%})"
                  for name, m in backtest.get("methods", {}).items()]
    lines += ["", "See nextx.json for every setting."]
    (out / "README.md").write_text("\n".join(lines) + "\n")
