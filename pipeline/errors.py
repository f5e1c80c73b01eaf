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
