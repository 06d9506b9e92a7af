"""`nextx inspect`: layout, steps, LoRA settings and the rank-1 trajectory of every module."""

from __future__ import annotations

import click
from rich.table import Table

from nextx.cli.common import console, emit_json, progress_bar, run_options
from nextx.devices import DEVICE_HELP
from nextx.inspection import inspect_run


def _fmt(value, digits=3) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _series(values: list) -> str:
    if len(values) <= 4:
        return " ".join(_fmt(v) for v in values)
    return f"{_fmt(values[0])} → {_fmt(values[len(values) // 2])} → {_fmt(values[-1])}"


@click.command()
@run_options
@click.option("--modules", "granularity", type=click.Choice(["type", "all"]), default="type", show_default=True,
              help="One row per module type, or one per module.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write σ₁ and energy over steps to a PNG.")
@click.option("--device", default="cpu", show_default=True, metavar="DEVICE",
              help=f"Where the factor products run: {DEVICE_HELP}.")
def inspect(open_run, granularity: str, as_json: bool, plot: str | None, device: str) -> None:
    """Show the exact rank-1 trajectory of every trained module of RUN.

    \b
    Examples:
      nextx inspect runs/grpo
      nextx inspect runs/grpo --modules all --json > traj.json
      nextx inspect ckpts --layout verl --lora-alpha 32 --plot traj.png
      nextx inspect hf://org/run --device auto
    """
    if plot:
        from nextx.studies.plot import check_new

        check_new(plot)
    run = open_run()
    with progress_bar("reading modules", len(run.modules)) as advance:
        report = inspect_run(run, progress=advance, device=device)
    if plot:
        from nextx.studies.plot import plot_inspect

        plot_inspect(report, plot)
    if as_json:
        emit_json(report)
        return
    _render(report, granularity)
    if plot:
        click.echo(plot)


def _render(report: dict, granularity: str) -> None:
    head = Table.grid(padding=(0, 2))
    head.add_row("run", report["source"])
    head.add_row("layout", f"{report['layout']} ({report['kind']})")
    head.add_row("steps", ", ".join(map(str, report["steps"])))
    head.add_row("modules", str(report["num_modules"]))
    if report["kind"] == "lora":
        head.add_row("LoRA", f"r={report['lora_rank']} alpha={report['lora_alpha']} rslora={report['use_rslora']}")
    head.add_row("targets", ", ".join(report["target_modules"]))
    console.print(head)
    if report.get("offset_steps"):
        steps = report["offset_steps"]
        console.print(f"[yellow]checkpoints at steps {', '.join(map(str, steps))} carry base offsets (in-loop jumps "
                      "folded into the base): nextx reads them, a plain PEFT load misses them — write a plain adapter "
                      "with: nextx export CHECKPOINT -o OUT[/yellow]", markup=True)
    rows = report["by_type"] if granularity == "type" else report["modules"]
    table = Table(title="rank-1 trajectory of the global delta W_t − W₀", title_justify="left")
    table.add_column("module type" if granularity == "type" else "module", no_wrap=True)
    if granularity == "type":
        table.add_column("n", justify="right")
    table.add_column("shape")
    table.add_column("σ₁ over steps")
    table.add_column("energy σ₁/Σσ")
    table.add_column("R² (σ₁ vs step)", justify="right")
    for row in rows:
        cells = [row["type"] if granularity == "type" else row["name"]]
        if granularity == "type":
            cells.append(str(row["count"]))
        cells += ["×".join(map(str, row["shape"])), _series(row["sigma"]), _series(row["energy"]), _fmt(row["r2"])]
        table.add_row(*cells)
    console.print(table)
    s = report["summary"]
    console.print(
        f"mean final energy {_fmt(s['mean_last_energy'])}; median R² {_fmt(s['median_r2'])}; "
        f"R² > 0.9 for {_pct(s['fraction_r2_above_0.9'])} of modules, < 0 for {_pct(s['fraction_r2_negative'])}"
    )
