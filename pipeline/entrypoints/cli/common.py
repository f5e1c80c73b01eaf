"""What every command shares: the console, the error handler, settings, tables,
and the one way a command asks the worker and falls back to what the CLI reads
itself.

Heavy libraries (aiokafka, chdb, the Faust runtime) are imported inside the
functions that need them, so `leadflow --help` starts fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from functools import wraps
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from pipeline.config.settings import Settings, load_settings
from pipeline.errors import LeadflowError

if TYPE_CHECKING:
    from pipeline.config.topics import Topics, TopicSpec

console = Console(width=None if sys.stdout.isatty() else 120)
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
LeadId = Annotated[str, typer.Argument(help="The lead's id.")]
"""The argument of every command about one lead."""


def friendly(fn: F) -> F:
    """Turn our errors into one red message and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LeadflowError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def cli_settings() -> Settings:
    """The settings, loaded once per command; logging is configured with them."""
    settings = load_settings()
    from pipeline.config.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    return settings


def topics_of(settings: Settings) -> Topics:
    """The topic registry (topics.yaml) under these settings' prefix."""
    from pipeline.config.topics import load_topics

    return load_topics(settings.topics_file, settings.topic_prefix)


def print_rows(rows: list[dict[str, Any]], format_: str, title: str) -> None:
    """Rows as a table (numbers right-aligned), CSV (formula-safe) or JSON on stdout."""
    import json

    from rich.table import Table

    from pipeline.reporting.client import csv_text

    if format_ == "json":
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    elif format_ == "csv":
        sys.stdout.write(csv_text(rows))
    else:
        table = Table(title=title)
        columns = list(rows[0]) if rows else []
        for column in columns:
            numeric = any(isinstance(r.get(column), int | float) for r in rows)
            table.add_column(column, justify="right" if numeric else "left")
        for row in rows:
            table.add_row(*("–" if row.get(c) is None else str(row.get(c)) for c in columns))
        console.print(table if rows else f"{title}: no rows")


def print_lines(lines: Iterable[str]) -> None:
    """An explanation, line by line, as written (rule names may hold brackets)."""
    for line in lines:
        console.print(line, markup=False, highlight=False)


def first_found(missing: str, *sources: Callable[[], T | None]) -> T:
    """What the first source that knows it answers: the CLI's explain-with-fallback.

    The sources are asked in turn: the running worker first (its tables are the
    newest), then what the CLI reads itself (a topic, the warehouse). A source
    that cannot tell answers None (no worker runs, another worker holds the lead's
    partition, nothing on the topic) or no rows; when none can, the command fails
    with `missing`. A source whose failure must end the command (the worker is the
    only one that knows) raises its own error.
    """
    for source in sources:
        found = source()
        if found is not None and found != []:
            return found
    raise LeadflowError(missing)


REFUSALS = {401: "the worker refused the operator key", 404: "the worker holds no such lead"}
"""Why a worker did not show a lead, by HTTP status."""


def from_worker(
    settings: Settings, path: str, decode: Callable[[Any], T | None], only: str | None = None
) -> Callable[[], T | None]:
    """The worker's JSON view at `path` (GET, with the operator key), decoded.

    A worker that cannot tell (none runs, the lead is on another worker's
    partition, it refused the key) answers None, so the next source is asked.
    When the worker is the `only` source (`only` names what is asked for, e.g.
    "lead 42"), that is the error instead. A worker still recovering its tables
    says so (`WorkerRecovering`) either way: its answer is "not yet", not "no".
    """

    def ask() -> T | None:
        import urllib.error

        from pipeline.adapters.worker_api import get_json

        try:
            return decode(get_json(settings, path))
        except urllib.error.HTTPError as exc:
            if only is None:
                return None
            raise LeadflowError(f"{only}: {REFUSALS.get(exc.code, exc)}") from exc
        except OSError as exc:
            if only is None:
                return None
            raise LeadflowError(f"no worker answers at {settings.web_url} ({exc})") from exc

    return ask


def from_topic(
    settings: Settings, spec: TopicSpec, lead_id: str, decode: Callable[[bytes], T]
) -> Callable[[], T | None]:
    """The lead's newest event on the topic `spec`, decoded (a full scan of it)."""

    def read() -> T | None:
        import asyncio

        from pipeline.adapters.kafka.client import last_event_of

        raw = asyncio.run(last_event_of(settings.kafka, spec, lead_id))
        return None if raw is None else decode(raw)

    return read
