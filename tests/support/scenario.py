"""A small, fixed set of real events whose report figures are worked out by hand
in tests/integration/test_reports.py. Six leads, two weeks in November 2026:

A web_form/spring (day 0), nurtured; again via webinar/wb-scoring (day 7) and
  paid_ads/google (day 14); SQL day 7, owner lena.fischer (dach), contacted 4 min
  after routing, opportunity day 10, won day 14 for 1,000 EUR.
B a paid_ads/linkedin activity (day 0.5) before its web_form/pricing inquiry
  (day 1); fast lane, owner anna.schmidt (dach-north) 10 s later, contacted 3 min
  after the inquiry; webinar/wb-scoring inquiry day 2; won day 3 for 500 EUR.
C trade_fair/dmexco (day 1), SQL 1 h later, paul.becker, contacted day 1 + 3 h,
  lost day 5 ("budget").
D web_form/spring (day 2), disqualified ("competitor").
E email/info-inbox (day 2), a lead still waiting for MQL.
F trade_fair/dmexco (day 2), SQL 1 h later, lena.fischer; SLA breached twice,
  reassigned to paul.becker, contacted 90 min after the inquiry, opportunity
  day 4, won day 6 for 2,000 EUR.
Two rejected messages (email_invalid + phone_invalid; not_json).
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.config.report_rules import CampaignCosts, Targets
from pipeline.config.rules import load_rules
from pipeline.config.settings import SHIPPED_RULES, SHIPPED_TOPICS
from pipeline.config.topics import load_topics
from pipeline.domain.messages import Position
from pipeline.reporting.events import event_row
from pipeline.reporting.reports import ReportInputs
from schemas.envelope import Source, derive_id
from schemas.inputs import Activity, CrmOutcome
from schemas.lead import (
    ActivityRecorded,
    Assignment,
    LeadAssigned,
    LeadCaptured,
    LeadEnriched,
    LeadQualified,
    OutcomeRecorded,
    Owner,
    Qualification,
    RecordedOutcome,
    SlaBreach,
    SlaBreached,
    Territory,
)
from schemas.rejected import MessageRejected, Reason, Rejection
from tests.support.factories import captured

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TOPICS = load_topics(SHIPPED_TOPICS)
COSTS = CampaignCosts.model_validate(
    {
        "costs": [
            {"channel": "web_form", "campaign": "spring", "month": "2026-11", "amount_eur": 300},
            {"channel": "paid_ads", "campaign": "google", "month": "2026-11", "amount_eur": 400},
            {"channel": "trade_fair", "campaign": "dmexco", "month": "2026-11", "amount_eur": 1000},
            {"channel": "webinar", "campaign": "wb-scoring", "month": "2026-11", "amount_eur": 100},
        ]
    }
)

ROUTING = load_rules(SHIPPED_RULES).routing
TARGETS = Targets.model_validate(
    {
        "targets": [
            {"month": "2026-11", "leads": 10, "won": 2, "revenue_eur": 4000},
            {"month": "2026-11", "channel": "web_form", "leads": 2},
            {"month": "2026-10", "leads": 5},
        ]
    }
)
INPUTS = ReportInputs(routing=ROUTING, targets=TARGETS)
"""The rules the reports read beside the events: the shipped routing and these targets."""


def lead_id(name: str) -> uuid.UUID:
    return derive_id("report-scenario", name)


def day(n: float, **delta: float) -> datetime:
    return T0 + timedelta(days=n, **delta)


class Scenario:
    """Builds the events in order; `rows()` gives their lead_events rows."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, Any]] = []  # (topic spec, model)
        self.first_capture: dict[str, LeadCaptured] = {}
        self.owners: dict[str, tuple[str, str]] = {}  # lead → (queue, rep) of its latest owner

    def _add(self, spec: Any, event: Any) -> Any:
        self.events.append((spec, event))
        return event

    def inquiry(self, lead: str, at: datetime, channel: str, campaign: str) -> LeadCaptured:
        base = captured(inquiry_id=f"{lead}-{at.isoformat()}")
        merged = lead in self.first_capture
        event = base.model_copy(
            update={
                "event_id": derive_id("captured", lead, at.isoformat()),
                "lead_id": lead_id(lead),
                "trace_id": derive_id("trace", lead, at.isoformat()),
                "source": Source(channel=channel, campaign=campaign),
                "occurred_at": at,
                "emitted_at": at,
                "merged": merged,
            }
        )
        self.first_capture.setdefault(lead, event)
        return self._add(TOPICS.captured, event)

    def enriched(self, lead: str, at: datetime, region: str, product: str) -> None:
        first = self.first_capture[lead]
        profile = first.payload.model_copy(
            update={"territory": Territory(region=region), "product_interest": [product]}
        )
        self._add(
            TOPICS.enriched,
            LeadEnriched(**self._envelope(lead, "enriched", at), payload=profile),
        )

    def qualified(
        self,
        lead: str,
        at: datetime,
        status: str,
        decision: str,
        iteration: int = 1,
        fast_lane: str | None = None,
        reason: str | None = None,
    ) -> Qualification:
        qualification = Qualification(
            profile=self.first_capture[lead].payload,
            score=10,
            breakdown=[],
            lead_class="hot" if decision == "sales" else "warm",
            status=status,  # type: ignore[arg-type]
            decision=decision,  # type: ignore[arg-type]
            iteration=iteration,
            fast_lane=fast_lane,
            reason=reason,
        )
        self._add(
            TOPICS.qualified,
            LeadQualified(
                **self._envelope(lead, f"qualified{iteration}", at), payload=qualification
            ),
        )
        return qualification

    def assigned(
        self, lead: str, at: datetime, queue: str, rep: str, q: Qualification, n: int = 0
    ) -> None:
        assignment = Assignment(
            qualification=q,
            owner=owner(rep),
            queue=queue,
            rule="test",
            sla_due_at=at + timedelta(minutes=5),
            reassignment=n,
        )
        self.owners[lead] = (queue, rep)
        self._add(
            TOPICS.sales_ready,
            LeadAssigned(**self._envelope(lead, f"assigned{n}", at), payload=assignment),
        )

    def breached(self, lead: str, at: datetime, queue: str, rep: str, breach: int) -> None:
        payload = SlaBreach(
            owner=owner(rep), queue=queue, sla_due_at=at, escalate_to="manager", breach=breach
        )
        self._add(
            TOPICS.escalations,
            SlaBreached(**self._envelope(lead, f"breach{breach}", at), payload=payload),
        )

    def crm(self, lead: str, at: datetime, outcome: str, cycle: int = 1, **fields: Any) -> None:
        """The CRM's message, and the outcome as the worker applied it to the lead."""
        event = CrmOutcome(
            outcome_id=f"{lead}-{outcome}" + (f"-{cycle}" if cycle > 1 else ""),
            lead_id=lead_id(lead),
            occurred_at=at,
            outcome=outcome,  # type: ignore[arg-type]
            **fields,
        )
        self._add(TOPICS.feedback, event)
        owned = self.owners.get(lead, ("q", "nobody"))
        applied = RecordedOutcome(outcome=event, owner=owner(owned[1]), queue=owned[0], cycle=cycle)
        self._add(
            TOPICS.outcomes,
            OutcomeRecorded(
                event_id=derive_id("OutcomeRecorded", lead, event.outcome_id),
                lead_id=lead_id(lead),
                occurred_at=at,
                emitted_at=at,
                payload=applied,
            ),
        )

    def activity(self, lead: str, at: datetime, channel: str, campaign: str) -> None:
        activity = Activity(
            activity_id=f"{lead}-activity",
            occurred_at=at,
            activity_type="page_view",
            lead_id=lead_id(lead),
            details={"channel": channel, "campaign": campaign},
        )
        self._add(
            TOPICS.lead_activity,
            ActivityRecorded(
                event_id=derive_id("activity", lead),
                lead_id=lead_id(lead),
                occurred_at=at,
                emitted_at=at,
                payload=activity,
            ),
        )

    def rejected(self, at: datetime, *codes: str) -> None:
        rejection = Rejection(
            stage="capture",
            topic="leads.inquiries",
            partition=0,
            offset=len(self.events),
            reasons=[Reason(code=c, message=c) for c in codes],
            original_b64=base64.b64encode(b"{}").decode(),
        )
        event = MessageRejected(
            event_id=uuid.uuid4(), occurred_at=at, emitted_at=at, payload=rejection
        )
        self._add(TOPICS.rejected, event)

    def _envelope(self, lead: str, what: str, at: datetime) -> dict[str, Any]:
        first = self.first_capture[lead]
        return {
            "event_id": derive_id(what, lead, at.isoformat()),
            "lead_id": lead_id(lead),
            "source": first.source,
            "trace_id": first.trace_id,
            "occurred_at": at,
            "emitted_at": at,
        }

    def rows(self) -> list[dict[str, Any]]:
        return [
            event_row(spec, event.model_dump_json().encode(), Position(spec.name, 0, n))
            for n, (spec, event) in enumerate(self.events)
        ]


def owner(rep: str) -> Owner:
    return Owner(rep_id=rep, name=rep.replace(".", " ").title(), email=f"{rep}@leadflow.example")


def scenario() -> Scenario:
    s = Scenario()
    # A: nurtured, three inquiries, won 1,000
    s.inquiry("A", day(0), "web_form", "spring")
    s.enriched("A", day(0, minutes=1), "Nord", "crm-suite")
    s.qualified("A", day(0, hours=1), "mql", "nurture")
    s.inquiry("A", day(7), "webinar", "wb-scoring")
    qa = s.qualified("A", day(7, hours=1), "sql", "sales", iteration=2)
    s.assigned("A", day(7, hours=1, seconds=30), "dach", "lena.fischer", qa)
    s.crm("A", day(7, hours=1, minutes=4, seconds=30), "contacted")
    s.crm("A", day(10), "opportunity")
    s.inquiry("A", day(14), "paid_ads", "google")
    s.crm("A", day(14), "won", amount_eur=1000.0)
    # B: activity touch first, fast lane, won 500
    s.activity("B", day(0.5), "paid_ads", "linkedin")
    s.inquiry("B", day(1), "web_form", "pricing")
    s.enriched("B", day(1, seconds=1), "Nord", "analytics")
    qb = s.qualified("B", day(1, seconds=2), "sql", "sales", fast_lane="price_request")
    s.assigned("B", day(1, seconds=10), "dach-north", "anna.schmidt", qb)
    s.crm("B", day(1, minutes=3), "contacted")
    s.inquiry("B", day(2), "webinar", "wb-scoring")
    s.crm("B", day(3), "won", amount_eur=500.0)
    # C: lost
    s.inquiry("C", day(1), "trade_fair", "dmexco")
    s.enriched("C", day(1, minutes=1), "Süd", "crm-suite")
    qc = s.qualified("C", day(1, hours=1), "sql", "sales")
    s.assigned("C", day(1, hours=1, seconds=30), "dach", "paul.becker", qc)
    s.crm("C", day(1, hours=3), "contacted")
    s.crm("C", day(5), "lost", reason="budget")
    # D: disqualified
    s.inquiry("D", day(2), "web_form", "spring")
    s.qualified("D", day(2, minutes=1), "disqualified", "retire", reason="competitor")
    # E: waits as a lead
    s.inquiry("E", day(2), "email", "info-inbox")
    s.qualified("E", day(2, minutes=1), "lead", "nurture")
    # F: SLA breached twice, reassigned, won 2,000
    s.inquiry("F", day(2), "trade_fair", "dmexco")
    qf = s.qualified("F", day(2, hours=1), "sql", "sales")
    s.assigned("F", day(2, hours=1, seconds=20), "dach", "lena.fischer", qf)
    s.breached("F", day(2, hours=1, minutes=5, seconds=20), "dach", "lena.fischer", 1)
    s.breached("F", day(2, hours=1, minutes=10, seconds=20), "dach", "lena.fischer", 2)
    s.assigned("F", day(2, hours=1, minutes=10, seconds=20), "dach", "paul.becker", qf, n=1)
    s.crm("F", day(2, minutes=90), "contacted")
    s.crm("F", day(4), "opportunity")
    s.crm("F", day(6), "won", amount_eur=2000.0)
    # rejected input
    s.rejected(day(1), "email_invalid", "phone_invalid")
    s.rejected(day(2), "not_json")
    return s
