"""Report: every event becomes one warehouse row; closed-loop queries over them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, Warehouse
from pipeline.config.topics import TopicSpec
from pipeline.domain.capture.inquiry import inquiry_key, lead_id_for
from pipeline.domain.messages import Position, best_effort_source
from pipeline.errors import ConfigError
from schemas.envelope import EventBase, Source, derive_id, utcnow
from schemas.inputs import Activity, CrmOutcome
from schemas.inquiry import Inquiry


def event_row(
    spec: TopicSpec,
    raw: bytes | None,
    at: Position,
    max_bytes: int | None = None,
    oldest: datetime | None = None,
) -> dict[str, Any]:
    """The `lead_events` row of one message; unreadable messages are kept too.

    What the stages refuse at the edge of a topic outside producers write to
    must not reach the reports either: a message over `max_bytes` is kept as
    an `Oversized` row with its size only (a 5 MB "won" outcome is no win; its
    first bytes are in the rejection's row), an activity or CRM outcome dated
    before `oldest` as an `Implausible` row without its lead (a CRM clock at
    1970 would be the lead's first contact)."""
    if raw is not None and max_bytes is not None and len(raw) > max_bytes:
        return _row(
            at,
            orjson.dumps({"original_size": len(raw), "max_bytes": max_bytes}).decode(),
            derive_id("Oversized", at.ref),
            "Oversized",
            utcnow(),
            version="",
            source=best_effort_source(raw),
        )
    text = (raw or b"").decode("utf-8", errors="replace")
    try:
        message = spec.model.model_validate_json(raw or b"")
    except ValidationError:
        return _row(
            at,
            text,
            derive_id("Unreadable", at.ref),
            "Unreadable",
            utcnow(),
            version="",
            source=best_effort_source(raw),
        )
    if isinstance(message, EventBase):
        return _row(
            at,
            text,
            message.event_id,
            message.event_type,
            message.occurred_at,
            emitted=message.emitted_at,
            version=message.schema_version,
            lead_id=getattr(message, "lead_id", None),
            trace_id=getattr(message, "trace_id", None),
            source=getattr(message, "source", None),
        )
    if isinstance(message, Inquiry):
        key = inquiry_key(message, at)
        return _row(
            at,
            text,
            derive_id("InquiryReceived", key),
            "InquiryReceived",
            message.received_at or utcnow(),
            lead_id=lead_id_for(key),
            trace_id=derive_id("trace", key),
            source=message.source,
        )
    if isinstance(message, Activity):
        kind, ident = "ActivityTracked", message.activity_id
    elif isinstance(message, CrmOutcome):
        kind, ident = "CrmOutcomeReported", message.outcome_id
    else:
        raise TypeError(f"no warehouse row for {type(message).__name__}")
    if oldest is not None and message.occurred_at < oldest:
        return _row(at, text, derive_id("Implausible", at.ref), "Implausible", utcnow(), version="")
    return _row(
        at, text, derive_id(kind, ident), kind, message.occurred_at, lead_id=message.lead_id
    )


def _row(
    at: Position,
    payload: str,
    event_id: uuid.UUID,
    event_type: str,
    occurred: datetime,
    *,
    emitted: datetime | None = None,
    version: str = "1.0",
    lead_id: uuid.UUID | None = None,
    trace_id: uuid.UUID | None = None,
    source: Source | None = None,
) -> dict[str, Any]:
    return {
        "event_id": str(event_id),
        "event_type": event_type,
        "schema_version": version,
        "lead_id": str(lead_id) if lead_id else None,
        "trace_id": str(trace_id) if trace_id else None,
        "occurred_at": _ch_time(occurred),
        "emitted_at": _ch_time(emitted or occurred),
        "channel": source.channel if source else "",
        "campaign": (source.campaign or "") if source else "",
        "utm_source": (source.utm_source or "") if source else "",
        "utm_medium": (source.utm_medium or "") if source else "",
        "utm_campaign": (source.utm_campaign or "") if source else "",
        "topic": at.topic,
        "partition": at.partition,
        "offset": at.offset,
        "payload": payload,
    }


def _ch_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


FUNNEL_COLUMNS = (
    "channel",
    "inquiries",
    "rejected",
    "captured",
    "answered",
    "answered_in_target",
    "qualified",
    "mql_or_sql",
    "nurtured",
    "sales_ready",
)


CHANNEL_FACTS = "leadflow.channel_facts"


def funnel_by_channel(
    warehouse: Warehouse, inquiries_topic: str, answer_target_s: float = 300.0
) -> list[dict[str, Any]]:
    """Inquiry → captured → qualified → MQL → nurtured / sales-ready per channel (002 §6.6.2).

    `answered` counts inquiries (not leads) that got their fulfillment touch,
    `answered_in_target` those answered within `answer_target_s` of their
    arrival (nurture.yaml `send_within_minutes`); `nurtured` counts leads the
    nurture gate kept.
    """
    if not inquiries_topic.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise ConfigError(
            f"topic name {inquiries_topic!r} goes into SQL: write it (and LEADFLOW_TOPIC_PREFIX) "
            "with letters, digits, '.', '-' and '_' only"
        )
    # Each fact is one row per id in `channel_facts` (migration 005), so a distinct
    # count of ids is exact however often an event was stored.
    return warehouse.query(f"""
        SELECT if(channel = '', '(unknown)', channel) AS channel,
               uniqExactIf(id, fact = 'message' AND topic = '{inquiries_topic}') AS inquiries,
               uniqExactIf(id, fact = 'rejected') AS rejected,
               uniqExactIf(id, fact = 'captured') AS captured,
               uniqExactIf(id, fact = 'qualified') AS qualified,
               uniqExactIf(id, fact = 'mql_or_sql') AS mql_or_sql,
               uniqExactIf(id, fact = 'answered') AS answered,
               uniqExactIf(id, fact = 'answered' AND seconds <= {float(answer_target_s)})
                   AS answered_in_target,
               uniqExactIf(id, fact = 'nurtured') AS nurtured,
               uniqExactIf(id, fact = 'sales_ready') AS sales_ready
        FROM {CHANNEL_FACTS}
        GROUP BY channel
        HAVING inquiries + rejected > 0
        ORDER BY inquiries DESC, channel
    """)


def event_counts(warehouse: Warehouse) -> dict[str, int]:
    rows = warehouse.query(
        f"SELECT event_type, count() AS n FROM {EVENTS_TABLE} FINAL GROUP BY event_type"
    )
    return {row["event_type"]: int(row["n"]) for row in rows}
