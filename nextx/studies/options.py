"""What every paired-seeds bench shares: its options (--seeds, --jobs, --out, --set FIELD=VALUE), the
seeds run in parallel processes (one torch thread each: on a shared machine the default pool can
make a tiny run 20× slower), and an interval printed as text."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from nextx.studies.demo import DemoConfig
from nextx.studies.parallel import map_seeds  # noqa: F401 - the benches' import


def seeds_parser(doc: str, set_example: str) -> argparse.ArgumentParser:
    """The options every paired-seeds bench takes: --seeds, --jobs, --out, --set FIELD=VALUE."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (FIRST..FIRST+N-1)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="the first seed (reporting seeds start at 0; tune on others, e.g. 100)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel (1 torch thread each when > 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per job (default: 1 when --jobs > 1, else every core)")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help=f"a demo, GRPO or DGO setting, {set_example} (repeatable)")
    return parser


def with_settings(config: DemoConfig, settings: list[str]) -> DemoConfig:
    """DemoConfig (so any run setting) fields set from FIELD=VALUE, values read as JSON when they parse."""
    values = {}
    for item in settings:
        key, _, text = item.partition("=")
        if key not in DemoConfig.__dataclass_fields__:
            raise SystemExit(f"--set {item}: {key!r} is not a demo or run setting")
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return replace(config, **values)


def ci_text(mean: float, ci: list, unit: str = "", digits: int = 0) -> str:
    """'+12 (+3 to +21)' — the mean and its interval, or the mean alone when there is none."""
    if ci[0] is None:
        return f"{mean:+.{digits}f}{unit}"
    return f"{mean:+.{digits}f}{unit} ({ci[0]:+.{digits}f} to {ci[1]:+.{digits}f})"
