"""Migration 005's report tables (lead_touches, lead_deals, lead_reasons,
channel_facts) on the real embedded ClickHouse engine: the reports that read
them give the rows the queries they replaced gave (kept below as the reference,
as they were before 005: `lead_events FINAL` and the attribution models in
Python), on a fresh warehouse and on one upgraded from 004."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from pipeline.adapters.warehouse.clickhouse import COSTS_TABLE, EVENTS_TABLE, Warehouse, migrate
from pipeline.adapters.warehouse.clickhouse import EmbeddedWarehouse as Embedded
from pipeline.adapters.warehouse.clickhouse import load_migrations as migrations
from pipeline.config import rules, settings
from pipeline.domain import messages
from pipeline.domain.capture import inquiry as capture
from pipeline.domain.enrich import enrichment
from pipeline.domain.identify import identity
from pipeline.domain.nurture import policy
from pipeline.domain.report.attribution import MODELS, Journey, TouchPoint, attribute
from pipeline.reporting.events import event_row, funnel_by_channel
from pipeline.reporting.reports import (
    DIMENSIONS,
    ReportParams,
    parse_params,
    run_report,
    touch_points,
)
from pipeline.reporting.timeline import STEPS_OF_THE_PIPELINE, lead_captures, lead_timeline
from schemas.lead import InquiryAccepted
from tests.support.factories import CHAIN, EXCLUSIONS, POLICY, inquiry
from tests.support.scenario import COSTS, INPUTS, TOPICS, day, lead_id, scenario

pytestmark = pytest.mark.integration
NURTURE = rules.load_rules(settings.SHIPPED_RULES).nurture
BEFORE_005 = 4


def rows_that_bite() -> list[dict[str, Any]]:
    """The report scenario and what it lacks: H, a returning customer won twice (the
    second deal after an opportunity, with touches of its own), a return, a loss
    without a reason, a retirement, a rejection that names one reason twice, and
    inquiries as received (one unreadable) with their answers, one of them late."""
    s = scenario()
    s.inquiry("H", day(0), "web_form", "spring")
    s.crm("H", day(2), "won", amount_eur=800)
    s.inquiry("H", day(4), "paid_ads", "google")
    s.activity("H", day(4.5), "webinar", "wb-scoring")
    s.crm("H", day(5), "opportunity", cycle=2)
    s.crm("H", day(6), "won", cycle=2, amount_eur=1200)
    s.crm("E", day(3), "returned", reason="wrong person")
    s.crm("D", day(3), "lost")
    s.qualified("E", day(9), "retired", "nurture", iteration=2, reason="no_engagement")
    s.rejected(day(3), "email_invalid", "email_invalid")
    rows = s.rows()
    for n, (name, late) in enumerate((("G", False), ("K", True))):
        raw = orjson.dumps(inquiry(inquiry_id=f"pipeline-{name}"))
        at = messages.Position(TOPICS.inquiries.name, 0, 100 + n)
        accepted = capture.capture_inquiry(raw, at, day(3), POLICY, EXCLUSIONS)
        assert isinstance(accepted, InquiryAccepted)
        captured = identity.captured_as(accepted, identity.Match(lead_id(name)))
        touch = policy.fulfill_inquiry(
            enrichment.enrich_lead(captured, CHAIN), NURTURE, day(3, seconds=900 if late else 2)
        )
        rows += [
            event_row(spec, body, messages.Position(spec.name, 0, 100 + n))
            for spec, body in (
                (TOPICS.inquiries, raw),
                (TOPICS.captured, captured.model_dump_json().encode()),
                (TOPICS.touches, touch.model_dump_json().encode()),
            )
        ]
    unreadable = messages.Position(TOPICS.inquiries.name, 0, 99)
    rows.append(event_row(TOPICS.inquiries, b"{not json", unreadable))
    return rows


def store(w: Warehouse, rows: list[dict[str, Any]]) -> None:
    """In two batches, then a third of them again (a sink retry after an unknown outcome)."""
    w.insert(COSTS_TABLE, COSTS.rows())
    w.insert(EVENTS_TABLE, rows[: len(rows) // 2])
    w.insert(EVENTS_TABLE, rows[len(rows) // 2 :])
    w.insert(EVENTS_TABLE, rows[::3])


@pytest.fixture(scope="module", params=["fresh", "upgraded"])
def warehouse(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Warehouse]:
    """These events in a new warehouse, or in one that held them before migration 005
    and was then upgraded (one at a time: chdb opens one directory per process)."""
    w = Embedded(tmp_path_factory.mktemp(request.param))
    try:
        if request.param == "fresh":
            migrate(w, migrations())
            store(w, rows_that_bite())
        else:
            migrate(w, migrations()[:BEFORE_005])
            store(w, rows_that_bite())
            upgraded = [m.version for m in migrate(w, migrations())]
            assert upgraded == [m.version for m in migrations()[BEFORE_005:]]
        yield w
    finally:
        w.close()


# --- the queries before migration 005, verbatim: the reference ---


def reference_attribution(
    w: Warehouse, p: ReportParams, deal_worth: float | None = None
) -> list[dict[str, Any]]:
    """The seven rule-based models as the report computed them before 005 (won
    deals instead of revenue with `deal_worth` 1)."""
    outcome = "JSONExtractString(payload, 'payload', 'outcome', 'outcome')"
    cycles = f"""
        SELECT lead_id, JSONExtractUInt(payload, 'payload', 'cycle') AS cycle,
               minIf(occurred_at, {outcome} = 'won') AS won,
               argMaxIf(JSONExtractFloat(payload, 'payload', 'outcome', 'amount_eur'),
                        occurred_at, {outcome} = 'won') AS amount_eur,
               minIf(occurred_at, {outcome} = 'opportunity') AS opportunity,
               countIf({outcome} = 'opportunity') > 0 AS had_opportunity
        FROM {EVENTS_TABLE} FINAL
        WHERE event_type = 'OutcomeRecorded' AND {outcome} IN ('won', 'opportunity')
        GROUP BY lead_id, cycle
        HAVING countIf({outcome} = 'won') > 0
    """
    won = f"SELECT lead_id FROM ({cycles}) WHERE {p.after('won')}"
    deals = w.query(f"""
        SELECT toString(lead_id) AS lead_id, toString(won) AS won_at,
               if(had_opportunity, toString(opportunity), '') AS opportunity_at, amount_eur,
               toString(lagInFrame(won, 1, toDateTime64(0, 3, 'UTC')) OVER (
                   PARTITION BY lead_id ORDER BY won
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) AS previous_win
        FROM ({cycles})
        ORDER BY lead_id, won
    """)
    deals = [d for d in deals if p.since is None or _time(d["won_at"]).date() >= p.since]
    touches = w.query(f"""
        SELECT toString(lead_id) AS lead_id, toString(occurred_at) AS at, channel, campaign,
               NOT JSONExtractBool(payload, 'merged') AS creates_lead
        FROM {EVENTS_TABLE} FINAL
        WHERE event_type = 'LeadCaptured' AND lead_id IN ({won})
        UNION ALL
        SELECT toString(lead_id), toString(occurred_at),
               if(JSONExtractString(payload, 'payload', 'details', 'channel') = '',
                  JSONExtractString(payload, 'payload', 'activity_type'),
                  JSONExtractString(payload, 'payload', 'details', 'channel')),
               JSONExtractString(payload, 'payload', 'details', 'campaign'), false
        FROM {EVENTS_TABLE} FINAL
        WHERE event_type = 'ActivityRecorded' AND lead_id IN ({won})
          AND JSONExtractString(payload, 'payload', 'details', 'campaign') != ''
    """)
    by_lead = touch_points(touches)
    journeys = [
        Journey(
            touches=tuple(
                t for t in by_lead.get(d["lead_id"], ()) if t.at > _time(d["previous_win"])
            ),
            won_at=_time(d["won_at"]),
            revenue=deal_worth or float(d["amount_eur"]),
            opportunity_at=_time(d["opportunity_at"]) if d["opportunity_at"] else None,
        )
        for d in deals
    ]
    names = [alias for alias, _ in DIMENSIONS[p.by or "channel"]]

    def key(touch: TouchPoint) -> tuple[str, ...]:
        return (touch.channel,) if names == ["channel"] else (touch.channel, touch.campaign)

    credited = attribute(journeys, key, p.half_life_days)
    rows = [
        {**dict(zip(names, k, strict=True)), **{m: round(v, 2) for m, v in models.items()}}
        for k, models in credited.items()
    ]
    return sorted(rows, key=lambda r: (-r["linear"], *(r[n] for n in names)))


def reference_reasons(w: Warehouse, p: ReportParams) -> list[dict[str, Any]]:
    qualified = "JSONExtractString(payload, 'payload', {})"
    return w.query(f"""
        SELECT kind, if(reason = '', '(no reason given)', reason) AS reason, sum(n) AS count
        FROM (
            SELECT JSONExtractString(payload, 'payload', 'outcome', 'outcome') AS kind,
                   JSONExtractString(payload, 'payload', 'outcome', 'reason') AS reason,
                   uniqExact(lead_id) AS n
            FROM {EVENTS_TABLE} FINAL
            WHERE event_type = 'OutcomeRecorded' AND kind IN ('lost', 'returned')
              AND {p.after("occurred_at")}
            GROUP BY kind, reason
            UNION ALL
            SELECT {qualified.format("'status'")} AS kind, {qualified.format("'reason'")} AS reason,
                   uniqExact(lead_id) AS n
            FROM {EVENTS_TABLE} FINAL
            WHERE event_type = 'LeadQualified'
              AND (position(payload, 'disqualified') > 0 OR position(payload, 'retired') > 0)
              AND kind IN ('disqualified', 'retired') AND {p.after("occurred_at")}
            GROUP BY kind, reason
            UNION ALL
            SELECT 'rejected' AS kind,
                   JSONExtractString(arrayJoin(JSONExtractArrayRaw(payload, 'payload', 'reasons')),
                                     'code') AS reason,
                   count() AS n
            FROM {EVENTS_TABLE} FINAL
            WHERE event_type = 'MessageRejected' AND {p.after("occurred_at")}
            GROUP BY reason
        )
        GROUP BY kind, reason ORDER BY kind, count DESC, reason
    """)


def reference_pipeline(
    w: Warehouse, inquiries_topic: str, answer_target_s: float
) -> list[dict[str, Any]]:
    purpose = "JSONExtractString(payload, 'payload', 'purpose')"
    return w.query(f"""
        WITH
        base AS (
            SELECT
                channel,
                countIf(topic = '{inquiries_topic}') AS inquiries,
                countIf(event_type = 'MessageRejected') AS rejected,
                uniqExactIf(lead_id, event_type = 'LeadCaptured') AS captured,
                uniqExactIf(lead_id, event_type = 'LeadQualified') AS qualified,
                uniqExactIf(lead_id, event_type = 'LeadNurtured') AS nurtured,
                uniqExactIf(lead_id, event_type = 'LeadAssigned') AS sales_ready
            FROM {EVENTS_TABLE} FINAL
            GROUP BY channel
        ),
        qualified AS (
            SELECT
                channel,
                uniqExactIf(lead_id, JSONExtractString(payload, 'payload', 'status')
                    IN ('mql', 'sql')) AS mql_or_sql
            FROM {EVENTS_TABLE} FINAL
            WHERE event_type = 'LeadQualified'
            GROUP BY channel
        ),
        answers AS (
            SELECT
                channel,
                uniqExactIf(trace_id, {purpose} = 'fulfillment') AS answered,
                uniqExactIf(trace_id, {purpose} = 'fulfillment'
                    AND JSONExtractFloat(payload, 'payload', 'response_seconds')
                        <= {float(answer_target_s)}) AS answered_in_target
            FROM {EVENTS_TABLE} FINAL
            WHERE event_type = 'TouchScheduled'
            GROUP BY channel
        )
        SELECT if(base.channel = '', '(unknown)', base.channel) AS channel,
               inquiries, rejected, captured, qualified,
               ifNull(mql_or_sql, 0) AS mql_or_sql, ifNull(answered, 0) AS answered,
               ifNull(answered_in_target, 0) AS answered_in_target, nurtured, sales_ready
        FROM base
        LEFT JOIN qualified ON qualified.channel = base.channel
        LEFT JOIN answers ON answers.channel = base.channel
        WHERE inquiries + rejected > 0
        ORDER BY inquiries DESC, channel
    """)


def reference_timeline_rows(w: Warehouse, lead: str) -> list[dict[str, Any]]:
    internal = ", ".join(f"'{t}'" for t in STEPS_OF_THE_PIPELINE)
    traces = f"""SELECT trace_id FROM {EVENTS_TABLE}
                  WHERE lead_id = '{lead}' AND trace_id IS NOT NULL"""
    others = f"""SELECT lead_id FROM {EVENTS_TABLE}
                 WHERE event_type = 'LeadCaptured' AND trace_id IN ({traces})
                   AND lead_id != '{lead}'"""
    return w.query(f"""
        SELECT toString(occurred_at) AS occurred_at, event_type, channel, campaign,
               toString(trace_id) AS trace_id, payload
        FROM {EVENTS_TABLE} FINAL
        WHERE (lead_id = '{lead}'
               OR (trace_id IN ({traces})
                   AND (lead_id IS NULL OR lead_id NOT IN ({others}))))
          AND event_type NOT IN ({internal})
        ORDER BY occurred_at, emitted_at
    """)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


ATTRIBUTION_PARAMS = [
    {},
    {"by": "campaign"},
    {"half_life_days": "1"},
    {"since": "2026-11-06"},  # H's second deal, not its first
    {"since": "2026-11-05", "by": "campaign", "half_life_days": "30"},
]


@pytest.mark.parametrize("query", ATTRIBUTION_PARAMS, ids=str)
def test_attribution_gives_todays_rows(warehouse: Warehouse, query: dict[str, str]) -> None:
    w = warehouse
    got = run_report(w, "attribution", parse_params(query), INPUTS)
    reference = reference_attribution(w, parse_params(query))
    rule_based = [{k: v for k, v in row.items() if k in reference[0]} for row in got]
    assert [r for r in rule_based if any(r[m] for m in MODELS)] == reference
    names = [k for k in reference[0] if k not in MODELS]
    deals = {
        tuple(r[n] for n in names): r
        for r in reference_attribution(w, parse_params(query), deal_worth=1.0)
    }
    for row in got:  # the reference rounds to cents, the report's deals to 4 places
        credited = deals.get(tuple(row[n] for n in names), dict.fromkeys(MODELS, 0.0))
        conversions = {m: row[f"{m}_conversions"] for m in MODELS}
        assert conversions == pytest.approx({m: credited[m] for m in MODELS}, abs=0.005)


@pytest.mark.parametrize("since", ["", "2026-11-05"])
def test_reasons_give_todays_rows(warehouse: Warehouse, since: str) -> None:
    w = warehouse
    got = run_report(w, "reasons", parse_params({"since": since}), INPUTS)
    assert got == reference_reasons(w, parse_params({"since": since}))
    found = {(r["kind"], r["reason"]): r["count"] for r in got}
    # on day 3: one message that names email_invalid twice; before it one more
    assert found[("rejected", "email_invalid")] == (2 if since else 3)
    assert found[("lost", "(no reason given)")] == 1 and ("retired", "no_engagement") in found


@pytest.mark.parametrize("target_s", [300.0, 1.0])
def test_the_pipeline_table_gives_todays_rows(warehouse: Warehouse, target_s: float) -> None:
    w = warehouse
    got = funnel_by_channel(w, TOPICS.inquiries.name, target_s)
    assert got == reference_pipeline(w, TOPICS.inquiries.name, target_s)
    web = next(r for r in got if r["channel"] == "web_form")
    assert (web["inquiries"], web["answered"]) == (2, 2)  # each stored twice, counted once
    assert web["answered_in_target"] == (1 if target_s == 300 else 0)


@pytest.mark.parametrize("name", "ABCDEFGHK")
def test_a_leads_timeline_is_read_by_its_keys_with_todays_events(
    warehouse: Warehouse, name: str
) -> None:
    """lead_event_keys and trace_event_keys (006) find the events today's scan found:
    the lead's own, and those of the inquiries merged into it (A: three, by trace)."""
    told = lead_timeline(warehouse, lead_id(name))
    reference = reference_timeline_rows(warehouse, str(lead_id(name)))
    key = ("occurred_at", "event_type", "trace_id")
    assert sorted(tuple(e[k] for k in key) for e in told) == sorted(
        tuple(r[k] for k in key) for r in reference
    )
    assert told  # every lead has a story
    captures = lead_captures(warehouse, lead_id(name))
    assert len(captures) == sum(e["event_type"] == "LeadCaptured" for e in told)
