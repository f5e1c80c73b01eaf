"""An inquiry a channel dated 1970 on the real embedded warehouse (chdb): the
reports measure it from its arrival, so speed to lead and the answer times are
not thrown off by 1.8 billion seconds, and the lead says what happened. A CRM
outcome dated 1970 is no first contact."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.adapters.warehouse.clickhouse import (
    EVENTS_TABLE,
    EmbeddedWarehouse,
    Warehouse,
    load_migrations,
    migrate,
)
from pipeline.config.rules import load_rules
from pipeline.config.settings import SHIPPED_RULES
from pipeline.domain.capture.inquiry import capture_inquiry
from pipeline.domain.enrich.enrichment import enrich_lead
from pipeline.domain.identify.identity import Match, captured_as
from pipeline.domain.messages import Position
from pipeline.domain.nurture.policy import fulfill_inquiry
from pipeline.reporting.events import event_row, funnel_by_channel
from pipeline.reporting.reports import parse_params, run_report
from schemas.inputs import CrmOutcome
from schemas.inquiry import Inquiry
from schemas.lead import InquiryAccepted
from tests.support.factories import CHAIN, EXCLUSIONS, POLICY, inquiry
from tests.support.scenario import INPUTS, TOPICS, day, lead_id, scenario

pytestmark = pytest.mark.integration
NURTURE = load_rules(SHIPPED_RULES).nurture
ARRIVED = day(3)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """The report scenario's six leads and G, a web-form inquiry dated 1970 that
    reached Leadflow on day 3, was answered 2 s and routed 10 s later; a CRM whose
    clock says 1970 reports G contacted (the sink stores what the stages refused)."""
    s = scenario()
    raw = orjson.dumps(inquiry(inquiry_id="g-1970", received_at="1970-01-01T00:00:00+00:00"))
    accepted = capture_inquiry(raw, Position("leads.inquiries", 0, 7), ARRIVED, POLICY, EXCLUSIONS)
    assert isinstance(accepted, InquiryAccepted)
    s.events.append((TOPICS.inquiries, Inquiry.model_validate_json(raw)))
    captured = captured_as(accepted, Match(lead_id("G")))
    s.first_capture["G"] = captured
    s.events.append((TOPICS.captured, captured))
    enriched = enrich_lead(captured, CHAIN)
    s.events.append((TOPICS.touches, fulfill_inquiry(enriched, NURTURE, day(3, seconds=2))))
    q = s.qualified("G", day(3, seconds=5), "sql", "sales")
    s.assigned("G", day(3, seconds=10), "dach-north", "anna.schmidt", q)
    w = EmbeddedWarehouse(Path(tmp_path_factory.mktemp("warehouse")))
    migrate(w, load_migrations())
    contacted = CrmOutcome(
        outcome_id="g-contacted",
        lead_id=lead_id("G"),
        occurred_at=datetime(1970, 1, 1, tzinfo=UTC),
        outcome="contacted",
    )
    crm_row = event_row(
        TOPICS.feedback,
        contacted.model_dump_json().encode(),
        Position(TOPICS.feedback.name, 0, 1),
        oldest=ARRIVED - timedelta(days=365),
    )
    w.insert(EVENTS_TABLE, [*s.rows(), crm_row])
    yield w
    w.close()


def test_the_1970_date_is_a_finding_on_the_lead(warehouse: Warehouse) -> None:
    [row] = warehouse.query(
        f"SELECT toString(occurred_at) AS at, payload FROM {EVENTS_TABLE} FINAL "
        f"WHERE event_type = 'LeadCaptured' AND lead_id = '{lead_id('G')}'"
    )
    assert row["at"] == "2026-11-05 09:00:00.000"  # its arrival
    [finding] = orjson.loads(row["payload"])["payload"]["findings"]
    assert (finding["code"], finding["field"]) == ("received_at_implausible", "received_at")
    assert "1970-01-01T00:00:00+00:00" in finding["message"]  # the channel's date is kept


def test_speed_to_lead_does_not_average_in_1970(warehouse: Warehouse) -> None:
    [total] = run_report(warehouse, "speed", parse_params({}), INPUTS)
    # inquiry → owner: B 10 s, G 10 s, F 3,620 s, C 3,630 s, A 608,430 s
    assert total["routed"] == 5
    assert total["median_seconds_to_route"] == 3620.0
    assert total["p90_seconds_to_route"] == round(3630 + 0.6 * (608430 - 3630), 1)
    # the contact dated 1970 is not G's first contact: A, B, C and F as in test_reports
    assert total["contacted"] == 4
    assert total["median_minutes_to_contact"] == 135.0
    assert total["contacted_within_5_min"] == 0.2


def test_the_answer_to_the_1970_inquiry_counts_as_on_time(warehouse: Warehouse) -> None:
    rows = {r["channel"]: r for r in funnel_by_channel(warehouse, "leads.inquiries")}
    assert (rows["web_form"]["answered"], rows["web_form"]["answered_in_target"]) == (1, 1)
