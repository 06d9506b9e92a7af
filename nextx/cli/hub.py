"""`nextx pull`: download a run from the Hugging Face Hub into a directory every command reads."""

from __future__ import annotations

import click

from nextx.cli.common import emit_json
from nextx.io.hub import HUB_LAYOUTS, parse_steps
from nextx.io.pull import pull


@click.command("pull")
@click.argument("repo")
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="Directory to lay the run out in.")
@click.option("--revision", default=None, help="Branch, tag or commit (folders / commits layouts).")
@click.option("--layout", type=click.Choice(HUB_LAYOUTS), default="auto", show_default=True,
              help="How the run is stored on the Hub.")
@click.option("--repo-template", default=None, help="One repo per step, e.g. 'org/run-step-{step}'.")
@click.option("--steps", "steps_spec", default=None, help="Steps for --repo-template: START:STOP:EVERY or a,b,c.")
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option("--json", "as_json", is_flag=True)
def pull_cmd(repo, out, revision, layout, repo_template, steps_spec, force, as_json):
    """Download only what nextx needs of a run on the Hub (no optimizer states, no pickles).

    \b
    Examples:
      nextx pull org/grpo-run -o runs/grpo
      nextx pull org/grpo-run -o runs/grpo --layout branches
      nextx pull x -o runs/r --repo-template 'org/run-step-{step}' --steps 10:150:10
    """
    steps = parse_steps(steps_spec) if steps_spec else None
    path = pull(repo, out, revision=revision, layout=layout, repo_template=repo_template, steps=steps, force=force)
    if as_json:
        emit_json({"output": str(path), "repo": repo, "revision": revision})
    else:
        click.echo(str(path))
