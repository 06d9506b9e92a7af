"""`nextx dgo …`: DGO's experience bank (extra `train`)."""

from __future__ import annotations

from pathlib import Path

import click

from nextx.cli.common import console, emit_json, safe_text


@click.group("dgo")
def dgo_group() -> None:
    """DGO (arXiv 2603.24093) tools: the experience bank."""


@dgo_group.command("bank")
@click.argument("path", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the entries as one JSON object on stdout.")
def bank_cmd(path, as_json):
    """Print an experience bank: a bank file (JSON lines) or a run directory holding experience_bank.jsonl.

    \b
    Examples:
      nextx dgo bank runs/dgo
      nextx dgo bank runs/dgo/experience_bank.jsonl --json
    """
    from nextx.train.dgo.bank import BANK_FILE, ExperienceBank

    file = Path(path) / BANK_FILE if Path(path).is_dir() else Path(path)
    bank = ExperienceBank.load(file)
    if as_json:
        emit_json({"bank": str(file), "entries": [e.to_dict() for e in bank.entries]})
        return
    from rich.table import Table

    table = Table(title=f"{len(bank)} experiences in {safe_text(str(file))}", title_justify="left")
    for column in ("#", "experience", "source", "round", "validation"):
        table.add_column(column, justify="left" if column in ("experience", "source") else "right")
    for index, entry in enumerate(bank.entries):
        score = "—" if entry.score is None else f"{entry.score:.4f}"
        table.add_row(str(index), safe_text(entry.text), safe_text(entry.source), str(entry.round), score)
    console.print(table)
