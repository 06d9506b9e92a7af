"""`nextx export`: a checkpoint's true weights as a plain PEFT adapter (what any loader reads)."""

from __future__ import annotations

from pathlib import Path

import click

from nextx.cli.common import console, emit_json


@click.command("export")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="The plain adapter's directory.")
@click.option("--force", is_flag=True, help="Replace an existing output.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def export_cmd(checkpoint, out, force, as_json):
    """Write CHECKPOINT's true weights as a plain PEFT adapter of rank r + k.

    A checkpoint saved after in-loop offset jumps holds W₀ + offset + s·B·A; PEFT, vLLM and other
    plain loaders read only s·B·A. The export holds the whole W − W₀ (exactly; a checkpoint without an
    offset is copied as the same adapter).

    \b
    Examples:
      nextx export runs/grpo-every/checkpoint-300 -o runs/grpo-every-300
      vllm serve BASE --enable-lora --lora-modules run=$(nextx export runs/x/checkpoint-300 -o runs/x-300)
    """
    from nextx.jump.export import checkpoint_run, plain_adapter

    run = checkpoint_run(Path(checkpoint))
    path = plain_adapter(run, Path(out), force=force)
    offsets = run.describe()["offset_steps"]
    console.print(f"{checkpoint}: {'base offset folded into the adapter' if offsets else 'no base offset'} → {path}")
    if as_json:
        emit_json({"output": str(path), "checkpoint": str(checkpoint), "had_offset": bool(offsets)})
    else:
        click.echo(str(path))
