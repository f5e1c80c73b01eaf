"""Errors that say what to do."""

from __future__ import annotations


class LeadflowError(Exception):
    """Base of errors the CLI reports as one clear message, without a traceback."""


class ConfigError(LeadflowError):
    """A settings or rule file is wrong; the message names the file and key."""


class KafkaUnavailable(LeadflowError):
    """The broker could not be reached or started."""


class WarehouseUnavailable(LeadflowError):
    """ClickHouse did not take a write; retryable."""

    retryable = True


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
