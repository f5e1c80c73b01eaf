"""Report: every event becomes one warehouse row; closed-loop queries over them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from pipeline.capture import inquiry_key, lead_id_for
from pipeline.messages import Position
from pipeline.topics import TopicSpec
from pipeline.warehouse import EVENTS_TABLE, Warehouse
from schemas.envelope import EventBase, Source, derive_id, utcnow
from schemas.inputs import Activity, CrmOutcome
from schemas.inquiry import Inquiry


def event_row(spec: TopicSpec, raw: bytes | None, at: Position) -> dict[str, Any]:
    """The `lead_events` row of one message; unreadable messages are kept too."""
    try:
        message = spec.model.model_validate_json(raw or b"")
    except ValidationError:
        now = utcnow()
        text = (raw or b"").decode("utf-8", errors="replace")
        return _row(
            derive_id("Unreadable", at.ref), "Unreadable", "", None, None, now, now, None, at, text
        )
    return _row_for(message, at, (raw or b"").decode("utf-8", errors="replace"))


def _row_for(message: BaseModel, at: Position, payload: str) -> dict[str, Any]:
    now = utcnow()
    if isinstance(message, EventBase):
        return _row(
            message.event_id,
            message.event_type,
            message.schema_version,
            getattr(message, "lead_id", None),
            getattr(message, "trace_id", None),
            message.occurred_at,
            message.emitted_at,
            getattr(message, "source", None),
            at,
            payload,
        )
    if isinstance(message, Inquiry):
        key = inquiry_key(message, at)
        when = message.received_at or now
        return _row(
            derive_id("InquiryReceived", key),
            "InquiryReceived",
            "1.0",
            lead_id_for(key),
            derive_id("trace", key),
            when,
            when,
            message.source,
            at,
            payload,
        )
    if isinstance(message, Activity):
        return _row(
            derive_id("ActivityTracked", message.activity_id),
            "ActivityTracked",
            "1.0",
            message.lead_id,
            None,
            message.occurred_at,
            now,
            None,
            at,
            payload,
        )
    if isinstance(message, CrmOutcome):
        return _row(
            derive_id("CrmOutcomeReported", message.outcome_id),
            "CrmOutcomeReported",
            "1.0",
            message.lead_id,
            None,
            message.occurred_at,
            now,
            None,
            at,
            payload,
        )
    raise TypeError(f"no warehouse row for {type(message).__name__}")


def _row(
    event_id: Any,
    event_type: str,
    version: str,
    lead_id: Any,
    trace_id: Any,
    occurred: datetime,
    emitted: datetime,
    source: Source | None,
    at: Position,
    payload: str,
) -> dict[str, Any]:
    return {
        "event_id": str(event_id),
        "event_type": event_type,
        "schema_version": version,
        "lead_id": str(lead_id) if lead_id else None,
        "trace_id": str(trace_id) if trace_id else None,
        "occurred_at": _ch_time(occurred),
        "emitted_at": _ch_time(emitted),
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
    "qualified",
    "mql_or_sql",
    "nurtured",
    "sales_ready",
)


def funnel_by_channel(warehouse: Warehouse, inquiries_topic: str) -> list[dict[str, Any]]:
    """Inquiry → captured → qualified → MQL → nurtured / sales-ready per channel (002 §6.6.2)."""
    if not inquiries_topic.replace(".", "").replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"unexpected topic name {inquiries_topic!r}")
    return warehouse.query(f"""
        SELECT
            if(channel = '', '(unknown)', channel) AS channel,
            countIf(topic = '{inquiries_topic}') AS inquiries,
            countIf(event_type = 'MessageRejected') AS rejected,
            uniqExactIf(lead_id, event_type = 'LeadCaptured') AS captured,
            uniqExactIf(lead_id, event_type = 'LeadQualified') AS qualified,
            uniqExactIf(lead_id, event_type = 'LeadQualified'
                AND JSONExtractString(payload, 'payload', 'status') IN ('mql', 'sql'))
                AS mql_or_sql,
            uniqExactIf(lead_id, event_type = 'TouchScheduled') AS nurtured,
            uniqExactIf(lead_id, event_type = 'LeadAssigned') AS sales_ready
        FROM {EVENTS_TABLE} FINAL
        GROUP BY channel
        HAVING inquiries + rejected > 0
        ORDER BY inquiries DESC, channel
    """)


def event_counts(warehouse: Warehouse) -> dict[str, int]:
    rows = warehouse.query(
        f"SELECT event_type, count() AS n FROM {EVENTS_TABLE} FINAL GROUP BY event_type"
    )
    return {row["event_type"]: int(row["n"]) for row in rows}
