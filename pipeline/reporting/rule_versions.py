"""Decisions grouped by the rule set that made them (`leadflow report rules`).

Every qualification, nurture and routing decision records its rules' name and
content hash (`schemas.lead.Decided`), in the event the warehouse stores as it
came; events from before that record none and show as "(not recorded)".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, Warehouse

if TYPE_CHECKING:  # reports.py registers this report
    from pipeline.reporting.reports import ReportInputs, ReportParams

DECISIONS = (
    "LeadQualified",
    "TouchScheduled",
    "LeadNurtured",
    "LeadHandedOff",
    "LeadRouted",
    "LeadAssigned",
)
"""The event types of decisions, in lifecycle order: each records its rules."""
DECISION_TYPES = ", ".join(f"'{t}'" for t in DECISIONS)


def decisions_by_rules(
    warehouse: Warehouse, p: ReportParams, _: ReportInputs
) -> list[dict[str, Any]]:
    """Per decision type, rule set and what was decided (a qualification's decision,
    a touch's purpose, a nurture change's kind of reason, a routing's queue):
    decisions, leads, first and last seen."""
    return warehouse.query(f"""
        SELECT event_type AS decision,
               if(name = '', '(not recorded)', name) AS rules, hash, outcome,
               count() AS decisions, uniqExact(lead_id) AS leads,
               toString(min(occurred_at)) AS first_at, toString(max(occurred_at)) AS last_at
        FROM (
            SELECT event_type, lead_id, occurred_at,
                   JSONExtractString(payload, 'rules', 'name') AS name,
                   JSONExtractString(payload, 'rules', 'hash') AS hash,
                   multiIf(
                       event_type = 'LeadQualified',
                           JSONExtractString(payload, 'payload', 'decision'),
                       event_type = 'TouchScheduled',
                           JSONExtractString(payload, 'payload', 'purpose'),
                       event_type IN ('LeadRouted', 'LeadAssigned'),
                           JSONExtractString(payload, 'payload', 'queue'),
                       event_type = 'LeadNurtured',
                           splitByChar(':', JSONExtractString(payload, 'payload', 'reason'))[1],
                       '') AS outcome
            FROM {EVENTS_TABLE} FINAL
            WHERE event_type IN ({DECISION_TYPES}) AND {p.after("occurred_at")}
        )
        GROUP BY decision, rules, hash, outcome
        ORDER BY indexOf([{DECISION_TYPES}], decision), first_at, rules, outcome
    """)
