"""`adaptive-router replay`: replay RouterBench outcomes through a strategy and compare it.

It imports routing/ only when it runs, so `--help` stays fast.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from flows.cli.common import console, fail

if TYPE_CHECKING:
    from routing.evaluation.replay import ReplayReport, Result


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def report_table(report: ReplayReport) -> Table:
    """Router runs, every single model and the oracle, relative to the most accurate model."""
    best = report.models[report.best_model]
    table = Table(title=f"RouterBench replay: {report.rows} rows, strategy {report.strategy}")
    for column in ("policy", "accuracy", "total cost", "cost / correct", "accuracy vs best", "cost vs best"):
        table.add_column(column, justify="left" if column == "policy" else "right")

    def add(label: str, result: Result, style: str | None = None) -> None:
        table.add_row(
            label,
            f"{result.accuracy:.3f}",
            _money(result.total_cost),
            _money(result.cost_per_correct),
            f"{result.accuracy / best.accuracy:.1%}" if best.accuracy else "-",
            f"{result.total_cost / best.total_cost:.1%}" if best.total_cost else "-",
            style=style,
        )

    for run in report.runs:
        level = "" if run.willingness_to_pay is None else f" (L={run.willingness_to_pay:.3g})"
        add(f"router{level}", run, "bold")
    for name, result in sorted(report.models.items(), key=lambda item: -item[1].accuracy):
        add(name + (" (best)" if name == report.best_model else ""), result)
    add("oracle", report.oracle, "dim")
    return table


def _write_decisions(report: ReplayReport, path: Path) -> None:
    several = len(report.runs) > 1
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_id", "target"] + (["willingness_to_pay"] if several else []))
        for run in report.runs:
            for decision in run.decisions:
                extra = [run.willingness_to_pay] if several else []
                writer.writerow([decision.sample_id, decision.target, *extra])


def _embedder(strategy: str | None):
    """The MiniLM embedder when the strategy uses prompts (or is left to default) and it is installed."""
    if strategy not in (None, "contextual"):
        return None
    from blocks.embeddings import MiniLMEmbedder, minilm_available

    if minilm_available():
        return MiniLMEmbedder()
    if strategy == "contextual":
        console.print("[yellow]warning:[/yellow] no embedding model installed; contextual routes on eval only")
    return None


def _aim_line(report: ReplayReport) -> str:
    """Where the runs stand against 95% of the best model's accuracy at <= 30% of its cost."""
    near, cheap = report.near_best, report.accuracy_at_cost_aim
    reached = (
        "no run reached 95% of the best model's accuracy"
        if near is None
        else f"95% of {report.best_model}'s accuracy first reached at "
        f"L={'-' if near.willingness_to_pay is None else format(near.willingness_to_pay, '.3g')}: "
        f"{near.accuracy_vs_best:.1%} of its accuracy for {near.cost_vs_best:.1%} of its cost"
    )
    at_cost = "no run within 30% of its cost" if cheap is None else f"{cheap:.1%} of its accuracy"
    return f"{reached}; best within 30% of its cost: {at_cost}"


def replay(
    paths: Annotated[list[Path], typer.Argument(help="RouterBench CSV files to replay, in order.")],
    strategy: Annotated[
        str | None,
        typer.Option(
            help="A strategy name (see `adaptive-router strategies`); default: contextual when the "
            "embedding model is installed (prompts are embedded), else thompson."
        ),
    ] = None,
    warm_start: Annotated[
        list[Path] | None,
        typer.Option(help="RouterBench CSVs observed first as past executions of every model."),
    ] = None,
    willingness_to_pay: Annotated[
        list[float] | None,
        typer.Option(help="Dollars per correct answer (repeat for a cost-quality curve and its AIQ)."),
    ] = None,
    curve: Annotated[
        int | None,
        typer.Option(
            help="Sweep this many willingness-to-pay values spanning the data's whole cost range (from the "
            "cheapest model's cost per call to 200x the dearest's) instead of --willingness-to-pay.",
            min=2,
        ),
    ] = None,
    shuffle_seed: Annotated[
        int | None, typer.Option(help="Replay the rows in a seeded random order.")
    ] = None,
    decisions_out: Annotated[Path | None, typer.Option(help="Write the decisions CSV here.")] = None,
    report_out: Annotated[Path | None, typer.Option(help="Write the report JSON here.")] = None,
) -> None:
    """Route every RouterBench row with bandit feedback only; compare with each model and the oracle."""
    from routing.errors import RoutingError
    from routing.evaluation.replay import load_routerbench, willingness_grid
    from routing.evaluation.replay import replay as run_replay

    if curve is not None and willingness_to_pay:
        fail(ValueError("give either --curve or --willingness-to-pay, not both"))
    try:
        data = load_routerbench(paths)
        if curve is not None:
            willingness_to_pay = willingness_grid(data, curve)
        warm = load_routerbench(warm_start) if warm_start else None
        embedder = _embedder(strategy)
        if embedder is not None:
            console.print(f"embedding {len(data) + (len(warm) if warm else 0)} prompts with {embedder.name}...")
        report = run_replay(
            data,
            strategy,
            willingness_to_pay=willingness_to_pay or None,
            warm_start=warm,
            shuffle_seed=shuffle_seed,
            embedder=embedder,
        )
    except (OSError, ValueError, RoutingError) as error:
        fail(error)
    console.print(report_table(report))
    if report.skipped_rows:
        console.print(f"{report.skipped_rows} row(s) skipped for blank correctness cells.")
    if report.aiq is not None:
        console.print(f"AIQ {report.aiq:.4f} (zero router {report.zero_router_aiq:.4f})")
    console.print(_aim_line(report))
    if decisions_out is not None:
        _write_decisions(report, decisions_out)
        console.print(f"decisions written to {decisions_out}")
    if report_out is not None:
        report_out.write_text(report.model_dump_json(indent=2), encoding="utf-8")
        console.print(f"report written to {report_out}")
