"""structlog set up once: JSON lines off a terminal, readable console on one.

A processor masks e-mail addresses and phone numbers in every string value,
after exceptions are rendered (a pydantic error quotes the input), so personal
data does not reach log files whoever writes the log line. Faust, aiokafka and
aiohttp log through the standard library: a record factory masks their
messages and tracebacks too.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any

import structlog

# Both patterns start only where a run begins and never give back what a
# possessive quantifier took, so a 300 kB string is scanned once (the naive
# forms retried from every character: minutes for 20 kB of letters).
EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)++")
PHONE = re.compile(
    r"(?<![\w.+-])"  # not inside a word, a number or a host name
    r"(?!\d{1,3}(?:\.\d{1,3}){3}\b(?!\.\d))"  # an IPv4 address (Kafka's and aiohttp's logs)
    r"(?!\d{4}-\d{2}-\d{2})"  # an ISO date
    r"(?![0-9a-fA-F]{8}-[0-9a-fA-F]{4}-)"  # a UUID (lead ids) that starts with digits
    # a decimal number (a duration, a score); phone numbers start with 0 or +
    r"(?!(?:0|[1-9]\d*+)\.\d++(?![ ()/.-]{0,3}\d))"
    r"\+?\d(?:[ ()/.-]{0,3}+\d){6,}+"  # seven digits or more, with separators
)


def mask_contacts(text: str) -> str:
    """Any log text with e-mail addresses and phone numbers masked (anyone's: a log
    line never carries contact data). Not `redact_person`, which erases one person."""
    text = EMAIL.sub(lambda m: "***@" + m.group(0).rsplit("@", 1)[1], text)
    return PHONE.sub("***phone***", text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return mask_contacts(value)
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_pii(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event_dict.items():
        if key not in {"timestamp", "level"}:
            event_dict[key] = _redact(value)
    return event_dict


_plain_record_factory = logging.getLogRecordFactory()


def _redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """A standard-library log record whose message and traceback are masked."""
    record = _plain_record_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: keep the template, drop the args
        message = str(record.msg)
    record.msg, record.args = mask_contacts(message), ()
    if record.exc_info and record.exc_info[1] is not None:
        rendered = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        record.exc_text = mask_contacts(rendered)
    if record.stack_info:
        record.stack_info = mask_contacts(record.stack_info)
    return record


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_pii,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.setLogRecordFactory(_redacted_record)
