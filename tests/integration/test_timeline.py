"""A lead's timeline from the real embedded warehouse (chdb): its inquiries by
channel, the merge, enrichment, activities and CRM outcomes, oldest first."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, Warehouse, open_warehouse
from pipeline.config.settings import SHIPPED_TOPICS, load_settings
from pipeline.config.topics import load_topics
from pipeline.domain.capture.inquiry import capture_inquiry
from pipeline.domain.enrich.enrichment import enrich_lead
from pipeline.domain.messages import Position
from pipeline.reporting.events import event_row
from pipeline.reporting.timeline import lead_timeline
from schemas.envelope import EventBase
from schemas.inputs import Activity
from schemas.lead import ActivityRecorded, LeadCaptured
from tests.support.factories import (
    AT,
    CHAIN,
    EXCLUSIONS,
    NOW,
    POLICY,
    accepted,
    identify,
    inquiry,
    new_book,
)

TOPICS = load_topics(SHIPPED_TOPICS)
pytestmark = pytest.mark.integration
FAIR_AT = NOW + timedelta(days=2)


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    opened = open_warehouse(load_settings(warehouse_dir=tmp_path / "wh", state_dir=tmp_path))
    yield opened
    opened.close()


def store(warehouse: Warehouse, *events: EventBase | tuple[str, bytes]) -> None:
    rows = []
    for n, event in enumerate(events):
        if isinstance(event, tuple):
            topic, raw = event
            spec = TOPICS.by_name(topic)
        else:
            spec = next(s for s in TOPICS.all() if s.model is type(event))
            raw = event.model_dump_json().encode()
        rows.append(event_row(spec, raw, Position(spec.name, 0, n)))
    warehouse.insert(EVENTS_TABLE, rows)


def test_the_timeline_tells_the_leads_story_in_order(warehouse: Warehouse) -> None:
    book = new_book()
    form_body = inquiry(received_at=NOW.isoformat())
    fair_body = inquiry(
        inquiry_id="fair-9",
        source={"channel": "trade_fair", "event": "it-sa"},
        received_at=FAIR_AT.isoformat(),
        contact={"first_name": "Anna", "last_name": "Schmidt", "email": "ANNA@firma.de"},
    )
    form_steps = identify(book, accepted(received_at=NOW.isoformat()))
    # captured on the day it arrives: two days ahead of capture's clock it would be implausible
    fair_fields = {k: v for k, v in fair_body.items() if k != "answers"}
    fair_raw = orjson.dumps(inquiry(**fair_fields))
    fair_accepted = capture_inquiry(fair_raw, AT, FAIR_AT, POLICY, EXCLUSIONS)
    fair_steps = identify(book, fair_accepted)
    [form] = [e for e in form_steps if isinstance(e, LeadCaptured)]
    [fair] = [e for e in fair_steps if isinstance(e, LeadCaptured)]
    assert fair.merged and fair.lead_id == form.lead_id
    enriched = enrich_lead(form, CHAIN).model_copy(update={"occurred_at": NOW + timedelta(hours=1)})
    visit = Activity.model_validate_json(
        orjson.dumps(
            {
                "activity_id": "pv-1",
                "occurred_at": (NOW + timedelta(days=1)).isoformat(),
                "activity_type": "page_view",
                "lead_id": str(form.lead_id),
            }
        )
    )
    seen = ActivityRecorded(
        event_id=uuid.uuid4(),
        lead_id=form.lead_id,
        occurred_at=visit.occurred_at,
        emitted_at=visit.occurred_at,
        payload=visit,
    )
    won = {
        "outcome_id": "crm-1",
        "lead_id": str(form.lead_id),
        "occurred_at": (NOW + timedelta(days=9)).isoformat(),
        "outcome": "won",
        "amount_eur": 12000,
    }
    someone_else = identify(new_book(), accepted(contact={"email": "other@firma.de"}))
    store(
        warehouse,
        ("leads.inquiries", orjson.dumps(form_body)),
        ("leads.inquiries", orjson.dumps(fair_body)),
        *form_steps,
        *fair_steps,
        enriched,
        seen,
        ("crm.feedback", orjson.dumps(won)),
        *someone_else,
    )

    timeline = lead_timeline(warehouse, form.lead_id)

    assert [(e["event_type"], e["channel"], e["summary"]) for e in timeline] == [
        ("InquiryReceived", "web_form", "inquiry (crm-suite)"),
        ("LeadCaptured", "web_form", "lead created"),
        ("LeadEnriched", "web_form", enriched_summary(enriched)),
        ("ActivityRecorded", "", "activity: page_view"),
        ("InquiryReceived", "trade_fair", "inquiry (crm-suite)"),
        ("LeadCaptured", "trade_fair", "inquiry fair-9 merged into this lead (matched on email)"),
        ("CrmOutcomeReported", "", "CRM: won, 12,000 EUR"),
    ]
    assert lead_timeline(warehouse, uuid.uuid4()) == []


def enriched_summary(event: EventBase) -> str:
    company = event.payload.company  # type: ignore[attr-defined]
    territory = event.payload.territory  # type: ignore[attr-defined]
    return (
        f"enriched: {company.name or 'unknown company'}, "
        f"{(territory and territory.territory) or 'no territory'}"
    )
