"""Reports for the CLI. In embedded mode one process owns the chdb directory:
the running worker, asked over HTTP; with no worker running, the CLI opens the
warehouse itself. With a ClickHouse server the CLI queries it directly. The
worker is asked through `pipeline.adapters.worker_api.ask_worker`."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from pipeline.adapters.warehouse.clickhouse import Warehouse, open_warehouse
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics
from pipeline.domain.spreadsheet import spreadsheet_safe
from pipeline.reporting.reports import ReportInputs, Rows, report_inputs

T = TypeVar("T")


@contextmanager
def opened(settings: Settings, topics: Topics) -> Iterator[tuple[Warehouse, ReportInputs]]:
    """The warehouse itself and the report inputs, for when no worker owns it."""
    from pipeline.config.rules import load_rules

    inputs = report_inputs(
        load_rules(settings.rules_dir), settings.rules_dir, topics.inquiries.name
    )
    warehouse = open_warehouse(settings)
    try:
        yield warehouse, inputs
    finally:
        warehouse.close()


def through_worker_or_direct(
    settings: Settings,
    topics: Topics,
    ask: Callable[[], bytes | None],
    direct: Callable[[Warehouse, ReportInputs], T],
    decode: Callable[[bytes], T],
) -> T:
    """Ask the worker in embedded mode; otherwise (or with no worker) run `direct`."""
    if settings.clickhouse_url is None:
        answer = ask()
        if answer is not None:
            return decode(answer)
    with opened(settings, topics) as (warehouse, inputs):
        return direct(warehouse, inputs)


def csv_text(rows: Rows) -> str:
    """Rows as CSV; text cells that a spreadsheet would run as a formula get a
    leading apostrophe (numbers stay numbers)."""
    out = io.StringIO()
    columns = list(rows[0]) if rows else []
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _safe_cell(row.get(c)) for c in columns})
    return out.getvalue()


def _safe_cell(value: Any) -> Any:
    if isinstance(value, str):
        return spreadsheet_safe(value)
    return "" if value is None else value
