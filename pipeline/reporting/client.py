"""Reports for the CLI. In embedded mode one process owns the chdb directory:
the running worker, asked over HTTP; with no worker running, the CLI opens the
warehouse itself. With a ClickHouse server the CLI queries it directly."""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlencode

from pipeline.adapters.warehouse.clickhouse import Warehouse, open_warehouse
from pipeline.config.access import operator_key
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics
from pipeline.errors import LeadflowError
from pipeline.reporting.reports import ReportInputs, Rows, report_inputs

T = TypeVar("T")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet runs a cell starting with one of these as a formula."""


def ask_worker(
    settings: Settings,
    path: str,
    query: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 120.0,
) -> bytes | None:
    """The worker's answer, or None when no worker listens (an HTTP error is raised)."""
    url = settings.web_url + path + (f"?{urlencode(query)}" if query else "")
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    key = operator_key(settings)
    if key is not None:
        headers["X-Api-Key"] = key
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        raise LeadflowError(_refusal(settings, exc)) from None
    except OSError:  # nothing listens: no worker runs
        return None


def _refusal(settings: Settings, exc: urllib.error.HTTPError) -> str:
    try:
        reason = json.loads(exc.read()).get("error", exc.reason)
    except (ValueError, AttributeError):
        reason = exc.reason
    if exc.code == 401:
        return (
            f"the worker at {settings.web_url} wants an operator key: set the same "
            'LEADFLOW_OPERATOR_KEYS=\'{"analyst": "…"}\' for the worker and the CLI'
        )
    return f"the worker at {settings.web_url} answered {exc.code}: {reason}"


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
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value
