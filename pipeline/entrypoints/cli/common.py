"""What every command shares: the console, the error handler, settings, tables,
and the one way a command asks the worker and falls back to what the CLI reads
itself.

Heavy libraries (aiokafka, chdb, the Faust runtime) are imported inside the
functions that need them, so `leadflow --help` starts fast.
"""

from __future__ import annotations

import logging
import sys
import urllib.error
from collections.abc import Callable, Iterable
from functools import wraps
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from pipeline.config.settings import Settings, load_settings
from pipeline.errors import KafkaUnavailable, LeadflowError, WorkerUnavailable

if TYPE_CHECKING:
    from rich.table import Table

    from pipeline.config.topics import Topics, TopicSpec

TERMINAL = sys.stdout.isatty()
console = Console(width=None if TERMINAL else 120)
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
LeadId = Annotated[str, typer.Argument(help="The lead's id.")]
"""The argument of every command about one lead."""
DEBUG = {"traceback": False}
"""Set by `leadflow --debug`: an unexpected error shows its traceback."""


def plain_error(exc: Exception) -> str | None:
    """The one line an operator reads for an error, or None for a bug of ours.

    The one mapping every command shares: our own errors say what to do
    (`KafkaUnavailable`, `WorkerUnavailable`, `WorkerRecovering`, `ConfigError`,
    `BadRequest` …); a broker that does not answer (aiokafka's connection error, from
    a client not started through `start_client`) and a worker that does not answer
    (nothing listens at the web address) become the same lines as theirs; any other
    OS error names its file and reason."""
    if isinstance(exc, LeadflowError):
        return str(exc)
    if "aiokafka" in sys.modules:  # else no aiokafka error can have been raised
        from aiokafka.errors import KafkaConnectionError, KafkaError

        if isinstance(exc, KafkaConnectionError):
            return str(KafkaUnavailable.at(_settings_or_default().kafka_bootstrap))
        if isinstance(exc, KafkaError):
            return f"Kafka refused: {exc}"
    if isinstance(exc, urllib.error.URLError | ConnectionError):
        return str(WorkerUnavailable(_settings_or_default().web_url))
    if isinstance(exc, OSError):
        return f"{exc.filename or 'the system'}: {exc.strerror or exc}"
    return None


_loaded: list[Settings] = []
"""The settings the running command loaded (`cli_settings`), for `plain_error`."""


def _settings_or_default() -> Settings:
    return _loaded[-1] if _loaded else load_settings()


def friendly(fn: F) -> F:
    """Every error as one red line (`plain_error`) and exit code 1, never a traceback:
    a bug of ours is named as one (`leadflow --debug …` shows where it is)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            message = plain_error(exc)
            if message is None:
                if DEBUG["traceback"]:
                    raise
                message = (
                    f"unexpected {type(exc).__name__}: {exc} (a bug in leadflow; "
                    "`leadflow --debug …` shows where)"
                )
            console.print(f"[red]error:[/red] {message}", soft_wrap=True, markup=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def cli_settings() -> Settings:
    """The settings, loaded once per command; logging is configured with them.

    The Kafka client's own log lines (e.g. "Unable connect to …" for every try) are
    left out: a command reports a broker that does not answer itself, in one line."""
    settings = load_settings()
    _loaded.append(settings)
    from pipeline.config.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    return settings


def topics_of(settings: Settings) -> Topics:
    """The topic registry (topics.yaml) under these settings' prefix."""
    from pipeline.config.topics import load_topics

    return load_topics(settings.topics_file, settings.topic_prefix)


def print_rows(
    rows: list[dict[str, Any]], format_: str, title: str, rates: Iterable[str] = ()
) -> None:
    """Rows as a table (numbers right-aligned, the `rates` columns as percentages),
    CSV (formula-safe) or JSON on stdout (both with the values as they are)."""
    import json

    from rich.table import Table

    from pipeline.reporting.client import csv_text

    if format_ == "json":
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    elif format_ == "csv":
        sys.stdout.write(csv_text(rows))
    elif not rows:
        console.print(f"{title}: no rows")
    else:
        table = Table(title=title)
        columns, percent = list(rows[0]), set(rates)
        for column in columns:
            numeric = any(isinstance(r.get(column), int | float) for r in rows)
            table.add_column(column, justify="right" if numeric else "left")
        for row in rows:
            table.add_row(*(cell(row.get(c), c in percent) for c in columns))
        print_table(table)


def cell(value: Any, rate: bool = False) -> str:
    """A value as a table shows it: "–" for none, a rate (a fraction) as a percentage."""
    if value is None:
        return "–"
    if rate and isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.1%}"
    return str(value)


def print_table(table: Table) -> None:
    """A table in full: in a terminal as wide as it is (rich wraps cells to fit);
    anywhere else (a pipe, a file, CI's log) as wide as the table needs, so no cell
    is ever cut to "sales-re…"."""
    if TERMINAL:
        console.print(table)
        return
    from rich.measure import Measurement

    wide = Console(width=100_000, file=sys.stdout)
    width = Measurement.get(wide, wide.options, table).maximum
    Console(width=max(width, 20), file=sys.stdout).print(table)


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
            raise WorkerUnavailable(settings.web_url, only) from exc

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
