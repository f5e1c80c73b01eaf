"""`leadflow replay`: what a candidate rule set would have decided over the recorded
history, against the live rules (`pipeline.reporting.replay`). Read only: no topic
is written, no worker state touched."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from pipeline.entrypoints.cli.common import cli_settings, console, friendly, print_rows

TITLES = {
    "summary": "replay",
    "not_reproduced": "not reproduced: recorded decisions the live rules' replay does not take",
    "changed_leads": "leads the candidate rules treat differently",
    "funnel": "funnel: leads qualified, MQL, SQL",
    "rep_load": "rep load: leads each rep owns at the end",
    "outcomes": "recorded outcomes of the leads treated differently",
}


@friendly
def replay(
    rules: Annotated[
        Path,
        typer.Option("--rules", help="The candidate rules directory (like LEADFLOW_RULES_DIR)."),
    ],
    since: Annotated[
        str | None,
        typer.Option(help="Only leads first enriched from this date on, e.g. 2026-11-01."),
    ] = None,
    until: Annotated[str | None, typer.Option(help="Only history before this date.")] = None,
    format_: Annotated[
        Literal["table", "csv", "json"], typer.Option("--format", help="table, csv or json.")
    ] = "table",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the report here (csv or json) as well.")
    ] = None,
) -> None:
    """Replay the recorded history under candidate rules; print what would change.

    The live rules (LEADFLOW_RULES_DIR) are replayed too: what they do not reproduce
    of the record is listed as a defect ("not reproduced"), and the changes are the
    candidate's decisions against theirs."""
    from pipeline.reporting.client import csv_text
    from pipeline.reporting.replay import (
        Window,
        read_record,
        report_json,
        rule_set,
        run_replay,
        warehouse_query,
    )

    settings = cli_settings()
    window = Window.parse(since, until)  # a bad date fails before any I/O
    live, candidate = rule_set(settings.rules_dir, settings), rule_set(rules, settings)
    with warehouse_query(settings) as (query, page):
        record = read_record(query, window, page)
    report = run_replay(record, live, candidate)
    flat = [{"section": name, **row} for name, rows in report.items() for row in rows]
    if out is not None:
        kind = "json" if out.suffix == ".json" or format_ == "json" else "csv"
        out.write_bytes(report_json(report) if kind == "json" else csv_text(flat).encode())
    if format_ == "json":
        typer.echo(report_json(report).decode())
    elif format_ == "csv":
        typer.echo(csv_text(flat), nl=False)
    else:
        for name, rows in report.items():
            print_rows(rows, "table", TITLES[name], rates=("conversion",))
    if out is not None:
        console.print(f"wrote {out}")
