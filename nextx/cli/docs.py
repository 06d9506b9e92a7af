"""Generate docs/cli.md from the real --help of every command: python -m nextx.cli.docs > docs/cli.md"""

from __future__ import annotations

import click

from nextx.cli.main import cli


def cli_markdown() -> str:
    parts = ["# nextx command line", "", "Generated from `--help` by `python -m nextx.cli.docs`; a test fails on drift.", ""]
    with click.Context(cli, info_name="nextx", terminal_width=100, **cli.context_settings) as ctx:
        parts += ["## nextx", "", "```", cli.get_help(ctx).rstrip(), "```", ""]
        for name in sorted(cli.commands):
            command = cli.commands[name]
            with click.Context(command, info_name=name, parent=ctx, terminal_width=100) as sub:
                parts += [f"## nextx {name}", "", "```", command.get_help(sub).rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(cli_markdown(), end="")
