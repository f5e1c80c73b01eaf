"""`leadflow import FILE`: publish a list of inquiries (a fair's CSV or XLSX,
e-mails) and, with a worker running, say how identity resolution placed them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.entrypoints.cli.common import cli_settings, console, friendly, topics_of
from pipeline.errors import LeadflowError


@friendly
def import_file(
    file: Annotated[Path, typer.Argument(help="CSV (comma, semicolon, tab), XLSX, .eml or .mbox.")],
    channel: Annotated[str, typer.Option(help="Channel of every row.")] = "trade_fair",
    campaign: Annotated[str | None, typer.Option(help="Campaign of every row.")] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=Header, overrides the detected column mapping."),
    ] = None,
    errors: Annotated[
        Path | None, typer.Option(help="Per-row error file (default: FILE.errors.csv).")
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for the running worker to place the rows (new lead or "
            "merged into an existing one); 0: publish only."
        ),
    ] = 300.0,
) -> None:
    """Publish a list of inquiries (fair, event) or e-mails; problems go to an error file.

    Every row is published: capture rejects the bad ones into leads.rejected too.
    With a worker running, the import then waits until identity resolution has
    placed every row and prints how many became new leads and how many were
    merged into leads that existed (by e-mail, phone or company).
    """
    import csv

    from rich.progress import track

    from pipeline.adapters.bulk_import import placed, placement_line, rows_from_file, summarise
    from pipeline.adapters.kafka.client import CaptureWatcher
    from pipeline.adapters.worker_api import worker_answers
    from pipeline.config.reference import postal_table
    from pipeline.domain.capture.plausibility import Plausibility
    from pipeline.errors import ConfigError

    settings = cli_settings()
    overrides = dict(item.split("=", 1) for item in map_ or [] if "=" in item)
    policy = Plausibility(settings.default_region, postal_table())
    try:
        rows = list(
            track(
                rows_from_file(file, channel, campaign, overrides, policy),
                description="reading",
                console=console,
            )
        )
    except (OSError, ValueError, csv.Error) as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    topics = topics_of(settings)
    watching = wait > 0 and worker_answers(settings)
    traces = {r.trace for r in rows if not r.problems and r.trace}

    async def publish_and_watch() -> dict[str, Any]:
        from pipeline.adapters.kafka.client import publish

        watcher = CaptureWatcher(settings.kafka, topics)
        if watching:
            await watcher.start()
        try:
            with console.status(f"publishing {len(rows)} rows to {topics.inquiries.name}"):
                await publish(settings.kafka, topics.inquiries.name, [r.value for r in rows])
            if not watching:
                return {}
            with console.status(f"waiting for the worker to place {len(traces)} rows"):
                return dict(await watcher.wait(traces, wait))
        finally:
            if watching:
                await watcher.stop()

    outcomes = asyncio.run(publish_and_watch())
    summary = summarise(rows)
    error_file = errors or file.with_suffix(file.suffix + ".errors.csv")
    _write_import_errors(error_file, summary.errors)
    console.print(
        f"{len(rows)} rows: [green]{summary.accepted} accepted[/green], "
        f"[red]{summary.rejected} rejected[/red] (see {error_file}), "
        f"{summary.duplicates} duplicates of an earlier row",
        soft_wrap=True,  # one line for scripts, however long the path
    )
    if not watching:
        why = "--wait 0" if wait <= 0 else f"no worker answers at {settings.web_url}"
        console.print(f"merges not counted ({why}): the worker places the rows when it runs")
        return
    placement = placed(rows, outcomes)
    console.print(f"placed: {placement_line(placement)}", soft_wrap=True)
    if placement.pending:
        raise LeadflowError(
            f"{placement.pending} rows were not placed within {wait:.0f} s; they are published "
            "and the worker places them (see leadflow report funnel)"
        )


def _write_import_errors(path: Path, errors: list[tuple[int, list[Any]]]) -> None:
    import csv

    from pipeline.domain.spreadsheet import spreadsheet_safe

    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["row", "code", "field", "message"])
        for number, reasons in errors:
            for r in reasons:
                cells = [r.code, r.field or "", r.message]
                writer.writerow([number, *(spreadsheet_safe(c) for c in cells)])
