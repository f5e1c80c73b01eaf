"""`leadflow report …`: closed-loop reports, the dashboard, analyst SQL and the
warehouse sink's lag. In embedded mode the running worker owns the warehouse and
answers; with no worker (or a ClickHouse server) the CLI queries it itself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from pipeline.entrypoints.cli.common import (
    cli_settings,
    console,
    friendly,
    print_rows,
    topics_of,
)
from pipeline.errors import LeadflowError, WorkerUnavailable

app = typer.Typer(help="Closed-loop reports from the warehouse.", no_args_is_help=True)

Format = Literal["table", "csv", "json"]
FORMAT_OPTION = typer.Option("table", "--format", help="table, csv or json.")


def _report_command(
    name: str, title: str, dimensions: tuple[str, ...], rates: tuple[str, ...]
) -> None:
    """Register `leadflow report NAME` for one report."""

    @friendly
    def command(  # options as defaults: the help text names this report's dimensions
        by: str | None = typer.Option(None, help=f"Group by: {', '.join(dimensions)}."),
        since: str | None = typer.Option(None, help="Only from this date on, e.g. 2026-11-01."),
        grain: str = typer.Option("day", help="day, week or month (sources)."),
        half_life: float = typer.Option(7.0, help="Time-decay half-life in days (attribution)."),
        format_: Format = FORMAT_OPTION,
    ) -> None:
        import json

        from pipeline.adapters.worker_api import ask_worker
        from pipeline.reporting.client import through_worker_or_direct
        from pipeline.reporting.reports import parse_params, run_report

        settings = cli_settings()
        query = {"grain": grain, "half_life_days": str(half_life)}
        query |= {k: v for k, v in {"by": by, "since": since}.items() if v}
        params = parse_params(query)  # a bad option fails here, before any I/O
        rows = through_worker_or_direct(
            settings,
            topics_of(settings),
            lambda: ask_worker(settings, f"/v1/reports/{name}", query),
            lambda w, inputs: run_report(w, name, params, inputs),
            lambda answer: json.loads(answer)["rows"],
        )
        print_rows(rows, format_, title, rates)

    command.__doc__ = f"{title}."
    app.command(name)(command)


def _register_reports() -> None:
    from pipeline.reporting.reports import REPORTS

    for report in REPORTS.values():
        _report_command(report.name, report.title, report.by, report.rates)


_register_reports()


@app.command("dashboard")
@friendly
def report_dashboard(
    out: Annotated[Path, typer.Option("--out", help="Where to write the HTML page.")],
    since: Annotated[str | None, typer.Option(help="Only from this date on.")] = None,
) -> None:
    """Write the dashboard as one self-contained HTML file (works offline)."""
    from pipeline.adapters.worker_api import ask_worker
    from pipeline.reporting.client import through_worker_or_direct
    from pipeline.reporting.dashboard import dashboard_data, render_dashboard
    from pipeline.reporting.reports import parse_params
    from schemas.envelope import utcnow

    settings = cli_settings()
    query = {"since": since} if since else {}
    params = parse_params(query)
    html = through_worker_or_direct(
        settings,
        topics_of(settings),
        lambda: ask_worker(settings, "/dashboard", query),
        lambda w, inputs: render_dashboard(dashboard_data(w, params, inputs), utcnow()),
        lambda answer: answer.decode("utf-8"),
    )
    out.write_text(html, encoding="utf-8")
    console.print(f"wrote {out}")


@app.command("sql")
@friendly
def report_sql(
    query: Annotated[str, typer.Argument(help="One read-only query, e.g. 'SELECT …'.")],
    format_: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Run one read-only SQL query on the warehouse (what POST /v1/sql runs)."""
    import json

    from pipeline.adapters.warehouse.clickhouse import AnalystLimits, analyst_query
    from pipeline.adapters.worker_api import ask_worker
    from pipeline.reporting.client import through_worker_or_direct

    settings = cli_settings()
    rows = through_worker_or_direct(
        settings,
        topics_of(settings),
        lambda: ask_worker(settings, "/v1/sql", body=query.encode()),
        lambda w, _: analyst_query(w, query, AnalystLimits.of(settings)),
        lambda answer: json.loads(answer)["rows"],
    )
    print_rows(rows, format_, "query")


@app.command("sink")
@friendly
def report_sink() -> None:
    """How far the warehouse sink is behind: messages not yet stored (from the worker)."""
    import json

    from pipeline.adapters.worker_api import ask_worker

    settings = cli_settings()
    answer = ask_worker(settings, "/v1/warehouse/lag")
    if answer is None:
        raise WorkerUnavailable(settings.web_url, "the warehouse sink (nothing is sinking)")
    lag = json.loads(answer)
    console.print(
        f"lag {lag['lag']} messages ({lag['unread']} unread, {lag['buffered']} in the batch), "
        f"{lag['inserted']} rows stored since the worker started"
    )
    if lag.get("halted"):
        raise LeadflowError(f"the sink has halted: {lag['halted']}")
