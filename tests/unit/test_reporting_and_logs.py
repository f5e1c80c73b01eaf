import orjson
import structlog

from pipeline.config.logs import redact_pii, redact_text
from pipeline.config.settings import PROJECT_ROOT
from pipeline.config.topics import load_topics
from pipeline.dev.traffic import demo_inquiries
from pipeline.domain.capture.inquiry import capture_inquiry
from pipeline.domain.messages import Position
from pipeline.reporting.events import event_row
from schemas.envelope import derive_id
from schemas.lead import InquiryAccepted
from tests.support.factories import AT, EXCLUSIONS, NOW, POLICY, captured, inquiry

TOPICS = load_topics(PROJECT_ROOT / "topics.yaml")


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


def test_email_and_phone_are_masked_in_log_lines() -> None:
    text = redact_text("from anna.schmidt@firma.de, call +49 30 1234567 or 030/1234567")
    assert "anna.schmidt" not in text and "1234567" not in text
    assert "***@firma.de" in text


def test_the_logging_processor_redacts_nested_values() -> None:
    with structlog.testing.capture_logs(processors=[redact_pii]) as logs:
        structlog.get_logger().info("lead.seen", contact={"email": "a.b@c.de"}, lead_id="L1")
    assert logs[0]["contact"] == {"email": "***@c.de"}
    assert logs[0]["lead_id"] == "L1"


def test_demo_traffic_has_the_promised_mix_and_is_repeatable() -> None:
    messages = demo_inquiries(500, seed=3)
    kinds = {
        kind: sum(m.kind == kind for m in messages) for kind in ("valid", "invalid", "duplicate")
    }
    assert all(count > 0 for count in kinds.values())
    assert kinds["valid"] > 0.8 * len(messages)
    assert [m.value for m in messages] == [m.value for m in demo_inquiries(500, seed=3)]
    channels = {orjson.loads(m.value)["source"]["channel"] for m in messages if m.kind == "valid"}
    assert len(channels) >= 6


def test_the_simulated_crm_answers_after_routing_and_closes_each_lead_once() -> None:
    from collections import Counter

    from pipeline.dev.traffic import crm_outcomes
    from schemas.lead import LeadAssigned
    from tests.support.scenario import scenario

    assigned = [
        e
        for _, e in scenario().events
        if isinstance(e, LeadAssigned) and not e.payload.reassignment
    ]
    many = [
        a.model_copy(update={"lead_id": derive_id("crm", n, a.lead_id)})
        for n in range(30)
        for a in assigned
    ]
    answers = crm_outcomes(many, seed=3)
    assert answers == crm_outcomes(many, seed=3)
    routed = {a.lead_id: a.occurred_at for a in many}
    assert all(o.occurred_at > routed[o.lead_id] for o in answers)
    kinds = Counter(o.outcome for o in answers)
    assert kinds["won"] and kinds["lost"] and kinds["returned"]
    closed = Counter(o.lead_id for o in answers if o.outcome in ("won", "lost", "returned"))
    assert set(closed.values()) == {1}
    assert all(o.amount_eur and o.amount_eur > 0 for o in answers if o.outcome == "won")
