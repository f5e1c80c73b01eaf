"""Errors that say what to do."""

from __future__ import annotations


class LeadflowError(Exception):
    """Base of errors the CLI reports as one clear message, without a traceback."""


class ConfigError(LeadflowError):
    """A settings or rule file is wrong; the message names the file and key."""


class KafkaUnavailable(LeadflowError):
    """The broker could not be reached or started."""

    @classmethod
    def at(cls, bootstrap: str) -> KafkaUnavailable:
        """The one line every command prints when nothing answers at `bootstrap`."""
        return cls(
            f"no Kafka broker answers at {bootstrap}: start it with `leadflow kafka up` "
            "(or set LEADFLOW_KAFKA_BOOTSTRAP to where it runs)"
        )


class WorkerUnavailable(LeadflowError):
    """No worker answers at the configured web address: a command that needs the
    running worker (privacy, corrections, queues, the sink's lag) cannot go on."""

    def __init__(self, url: str, needed_for: str = "") -> None:
        why = f"; {needed_for} needs it running" if needed_for else ""
        super().__init__(
            f"no worker answers at {url}{why}: start it with `leadflow worker` "
            "(or set LEADFLOW_WEB_HOST / LEADFLOW_WEB_PORT to where it runs)"
        )


class WarehouseUnavailable(LeadflowError):
    """The warehouse gave no answer, or said "not now": no connection, a timeout, the
    embedded directory held by another process, a server that is overloaded or whose
    table is detached. Raised by the warehouse adapters
    (`pipeline.adapters.warehouse.clickhouse`). Retryable: the same statement may
    succeed later. The sink retries its insert with back-off and holds its offsets;
    the read side answers 503; the user waits, or starts the warehouse / the worker
    that owns the embedded directory."""

    retryable = True


class WarehouseRejected(LeadflowError):
    """The warehouse answered and refused the statement itself: a syntax error, an
    unknown column or function, a type mismatch, a row whose value the column does
    not take, a violated constraint, a read-only session. Raised by the warehouse
    adapters with ClickHouse's error `code`. Not retryable: the same statement gets
    the same answer. The sink stops storing (it never commits past the refused
    batch; see `pipeline.worker.sink`); the user fixes the schema or the statement
    that the message names, then restarts the worker."""

    retryable = False

    def __init__(self, message: str, code: int, name: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = name

    @property
    def reason(self) -> str:
        """The code and its name, e.g. "ClickHouse code 469 VIOLATED_CONSTRAINT": what
        was refused without the message, which may quote a row's values."""
        return f"ClickHouse code {self.code} {self.name or ''}".strip()


class WorkerRecovering(LeadflowError):
    """The worker reads its tables back from their changelogs (after a start or a
    rebalance); what it would show now is not the truth yet. Retryable."""

    retryable = True

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"worker is recovering its state, try again in {retry_after} s")
        self.retry_after = retry_after


class BadRequest(LeadflowError):
    """A caller's request that cannot be run as asked (unknown report, bad
    parameter, SQL that is not one read-only query): HTTP 400, CLI exit 1."""


class BadQuery(BadRequest):
    """An analyst's SQL (`POST /v1/sql`, `leadflow sql`) that the warehouse refused:
    syntax, an unknown table or column, a type mismatch, a write in the read-only
    session, a limit exceeded (time, `LEADFLOW_SQL_TIMEOUT_SECONDS`; memory). Raised
    by `analyst_query` from the engine's `WarehouseRejected`; HTTP 400 with
    ClickHouse's message, CLI exit 1. The analyst corrects the query
    (docs/warehouse.md lists tables and columns)."""


class EventTooLarge(LeadflowError):
    """An event would be larger than the producer and broker take (`max_message_bytes`):
    the input that caused it is rejected instead, the stage goes on."""
