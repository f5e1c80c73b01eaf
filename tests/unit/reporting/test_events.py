"""The warehouse row of each message: an inquiry, an envelope event, an unreadable or
invalid message (pure, no I/O)."""

import orjson

from pipeline.config.settings import SHIPPED_TOPICS
from pipeline.config.topics import load_topics
from pipeline.domain.capture.inquiry import capture_inquiry
from pipeline.domain.messages import Position
from pipeline.reporting.events import event_row
from schemas.lead import InquiryAccepted
from tests.support.factories import AT, EXCLUSIONS, NOW, POLICY, captured, inquiry

TOPICS = load_topics(SHIPPED_TOPICS)


def test_an_inquiry_row_shares_the_lead_id_of_its_captured_event() -> None:
    raw = orjson.dumps(inquiry())
    row = event_row(TOPICS.inquiries, raw, AT)
    lead = capture_inquiry(raw, AT, NOW, POLICY, EXCLUSIONS)
    assert isinstance(lead, InquiryAccepted)
    assert row["event_type"] == "InquiryReceived"
    assert row["lead_id"] == str(lead.lead_id)
    assert row["trace_id"] == str(lead.trace_id)
    assert (row["channel"], row["campaign"]) == ("web_form", "spring")


def test_an_envelope_row_carries_the_event_id_and_source() -> None:
    lead = captured()
    at = Position("leads.captured", 1, 7)
    row = event_row(TOPICS.captured, lead.model_dump_json().encode(), at)
    assert row["event_id"] == str(lead.event_id)
    assert (row["topic"], row["partition"], row["offset"]) == ("leads.captured", 1, 7)
    assert row["occurred_at"].count(":") == 2 and "T" not in row["occurred_at"]


def test_an_unreadable_message_is_kept_with_a_stable_id() -> None:
    row = event_row(TOPICS.captured, b"\xffnot json", AT)
    again = event_row(TOPICS.captured, b"\xffnot json", AT)
    assert row["event_type"] == "Unreadable"
    assert row["event_id"] == again["event_id"]
    assert "not json" in row["payload"]
    assert row["channel"] == ""


def test_an_invalid_inquiry_row_still_counts_for_its_channel() -> None:
    row = event_row(TOPICS.inquiries, orjson.dumps(inquiry(contact={"email": 3})), AT)
    assert (row["event_type"], row["channel"]) == ("Unreadable", "web_form")
