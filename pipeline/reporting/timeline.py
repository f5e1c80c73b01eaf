"""A lead's timeline: origin, merges, activities, stage changes and every
qualification, oldest first – what a rep reads before the first call; each
decision with the rules that made it and the lead's experiment variants.

It is read from the warehouse, which keeps every event of every topic: the
lead's own events, plus the events of every inquiry merged into it (found by
their trace), so each inquiry shows the channel it came by. An inquiry an
operator split off into a lead of its own tells its story there from then on.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, Warehouse
from schemas.lead import LeadCaptured

LEAD_KEYS = "leadflow.lead_event_keys"
TRACE_KEYS = "leadflow.trace_event_keys"
STEPS_OF_THE_PIPELINE = (
    "InquiryAccepted",
    "IdentityClaimed",
    "ActivityUnattached",
    "CorrectIdentity",
    "Unreadable",
)
"""Internal hand-overs between agents (and the operator's command, whose outcome
`IdentityCorrected` is told); they say nothing a person needs to know."""
LIFECYCLE = (
    "InquiryReceived",
    "LeadCaptured",
    "LeadEnriched",
    "LeadQualified",
    "TouchScheduled",
    "LeadHandedOff",
    "LeadRouted",
    "LeadAssigned",
)
"""Events of the same instant are told in the order the pipeline makes them."""


def _told_order(row: dict[str, Any]) -> tuple[str, int]:
    kind = row["event_type"]
    return row["occurred_at"], LIFECYCLE.index(kind) if kind in LIFECYCLE else len(LIFECYCLE)


def lead_timeline(warehouse: Warehouse, lead_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every event of the lead, oldest first, each with a one-line summary.

    The events are found by key (`lead_event_keys`, `trace_event_keys`, migration
    006) and read from lead_events by its primary key: one lead's timeline reads
    its own rows, not the whole log."""
    lead = str(uuid.UUID(str(lead_id)))  # only a well-formed id reaches the SQL
    internal = ", ".join(f"'{t}'" for t in STEPS_OF_THE_PIPELINE)
    traces = f"""SELECT trace_id FROM {LEAD_KEYS}
                  WHERE lead_id = '{lead}' AND trace_id IS NOT NULL"""
    # a trace's rows of another lead are that lead's story (an inquiry split off)
    others = f"""SELECT lead_id FROM {TRACE_KEYS}
                 WHERE trace_id IN ({traces}) AND event_type = 'LeadCaptured'
                   AND lead_id != '{lead}'"""
    keys = f"""SELECT event_type, event_id FROM {LEAD_KEYS} WHERE lead_id = '{lead}'
               UNION DISTINCT
               SELECT event_type, event_id FROM {TRACE_KEYS}
               WHERE trace_id IN ({traces})
                 AND (lead_id IS NULL OR lead_id NOT IN ({others}))"""
    rows = warehouse.query(
        f"""
        SELECT toString(occurred_at) AS occurred_at, event_type, channel, campaign,
               toString(trace_id) AS trace_id, payload
        FROM {EVENTS_TABLE} FINAL
        WHERE (event_type, event_id) IN ({keys}) AND event_type NOT IN ({internal})
        ORDER BY occurred_at, emitted_at
        """
    )
    return [
        {
            "occurred_at": row["occurred_at"],
            "event_type": row["event_type"],
            "channel": row["channel"],
            "campaign": row["campaign"],
            "trace_id": row["trace_id"],
            "summary": summarise(row["event_type"], message),
            "rules": decided_by(message),
        }
        for row in sorted(rows, key=_told_order)
        for message in [orjson.loads(row["payload"] or "{}")]
    ]


def lead_captures(warehouse: Warehouse, lead_id: uuid.UUID) -> list[LeadCaptured]:
    """The inquiries of a lead as identity resolution captured them, oldest first:
    what `leadflow lead split` and `lead merge` correct."""
    lead = str(uuid.UUID(str(lead_id)))
    rows = warehouse.query(
        f"""
        SELECT payload FROM {EVENTS_TABLE} FINAL
        WHERE event_type = 'LeadCaptured' AND lead_id = '{lead}'
          AND event_id IN (SELECT event_id FROM {LEAD_KEYS}
                           WHERE lead_id = '{lead}' AND event_type = 'LeadCaptured')
        ORDER BY occurred_at, emitted_at
        """
    )
    return [LeadCaptured.model_validate_json(row["payload"]) for row in rows]


CORRECTIONS = {
    "split_off": "inquiry {inquiry_id} split off into lead {other_lead} by an operator",
    "split_from": "split off lead {other_lead} by an operator: inquiry {inquiry_id}",
    "merged_in": "lead {other_lead} merged into this lead by an operator",
    "merged_into": "merged into lead {other_lead} by an operator",
}


def decided_by(message: dict[str, Any]) -> str:
    """For a decision: the rule set that made it and the lead's experiment variants,
    e.g. "scoring.yaml #0e1897164207, lower-mql-bar: mql-8" ("" for other events and
    for decisions older than the record)."""
    rules, arms = message.get("rules"), message.get("experiments")
    told = [f"{rules.get('name')} #{rules.get('hash')}"] if isinstance(rules, dict) else []
    if isinstance(arms, list):
        told += [f"{a.get('experiment')}: {a.get('variant')}" for a in arms if isinstance(a, dict)]
    return ", ".join(told)


def summarise(event_type: str, message: dict[str, Any]) -> str:
    """One line about one event, from the fields that matter to sales."""
    payload = message.get("payload") if isinstance(message.get("payload"), dict) else {}
    assert isinstance(payload, dict)
    qualification = payload.get("qualification") or payload
    owner = (payload.get("owner") or {}).get("name")
    match event_type:
        case "InquiryReceived":
            products = ", ".join(message.get("product_interest") or []) or "no product named"
            return f"inquiry ({products})"
        case "LeadCaptured":
            if message.get("merged"):
                score = message.get("match_score")
                why = f", name score {score:g}" if isinstance(score, int | float) else ""
                key, inquiry = message.get("matched_on"), payload.get("inquiry_id")
                return f"inquiry {inquiry} merged into this lead (matched on {key}{why})"
            return "lead created"
        case "LeadEnriched":
            company = (payload.get("company") or {}).get("name") or "unknown company"
            territory = (payload.get("territory") or {}).get("territory") or "no territory"
            return f"enriched: {company}, {territory}"
        case "LeadQualified":
            return (
                f"qualified #{qualification.get('iteration')}: {qualification.get('lead_class')} "
                f"(score {qualification.get('score')}), {qualification.get('status')}, "
                f"decision {qualification.get('decision')}"
            )
        case "TouchScheduled":
            purpose, channel = payload.get("purpose", "nurture"), payload.get("channel")
            return f"{purpose} touch by {channel}: {payload.get('content_id')}"
        case "LeadHandedOff":
            return f"handed to sales: {payload.get('reason')}"
        case "LeadRouted":
            return f"routed to queue {payload.get('queue')}"
        case "LeadAssigned":
            return f"assigned to {owner} ({payload.get('queue')}, {payload.get('assigned_by')})"
        case "SlaReminderDue" | "SlaBreached":
            return f"{event_type}: {owner} has not contacted the lead yet"
        case "LeadReleased":
            return f"released by {owner}: {payload.get('outcome')}"
        case "IdentityCorrected":
            template = CORRECTIONS.get(str(payload.get("action")), "identity corrected")
            return template.format_map({"inquiry_id": None, "other_lead": None, **payload})
        case "ActivityRecorded":
            return f"activity: {payload.get('activity_type')}"
        case "CrmOutcomeReported":
            amount = message.get("amount_eur")
            worth = f", {amount:,.0f} EUR" if isinstance(amount, int | float) else ""
            return f"CRM: {message.get('outcome')}{worth}"
        case "MessageRejected":
            reasons = ", ".join(r.get("code", "") for r in payload.get("reasons") or [])
            return f"rejected at {payload.get('stage')}: {reasons}"
    return event_type
