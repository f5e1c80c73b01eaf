import base64

import orjson

from pipeline.domain.capture.inquiry import capture_inquiry
from pipeline.domain.messages import Position
from schemas.lead import InquiryAccepted
from schemas.rejected import MessageRejected
from tests.support.factories import AT, EXCLUSIONS, NOW, POLICY, captured, inquiry


def reasons(result: object) -> list[str]:
    assert isinstance(result, MessageRejected)
    return [r.code for r in result.payload.reasons]


def test_a_plausible_inquiry_becomes_a_lead_with_its_source() -> None:
    lead = captured()
    assert lead.event_type == "LeadCaptured"
    assert lead.source.channel == "web_form"
    assert lead.source.campaign == "spring"
    assert lead.payload.contact.email == "anna@firma.de"
    assert lead.payload.inquiry_id == "form-1"


def test_the_same_inquiry_twice_gets_the_same_ids() -> None:
    raw = orjson.dumps(inquiry())
    first = capture_inquiry(raw, AT, NOW, POLICY, EXCLUSIONS)
    again = capture_inquiry(raw, Position("leads.inquiries", 0, 99), NOW, POLICY, EXCLUSIONS)
    assert isinstance(first, InquiryAccepted) and isinstance(again, InquiryAccepted)
    assert (first.lead_id, first.event_id, first.trace_id) == (
        again.lead_id,
        again.event_id,
        again.trace_id,
    )


def test_without_a_channel_id_the_position_identifies_the_inquiry() -> None:
    raw = orjson.dumps(inquiry(inquiry_id=None))
    one = capture_inquiry(raw, Position("leads.inquiries", 0, 1), NOW, POLICY, EXCLUSIONS)
    other = capture_inquiry(raw, Position("leads.inquiries", 0, 2), NOW, POLICY, EXCLUSIONS)
    assert isinstance(one, InquiryAccepted) and isinstance(other, InquiryAccepted)
    assert one.lead_id != other.lead_id


def test_the_same_id_from_two_channels_is_two_inquiries() -> None:
    email = captured(source={"channel": "email"})
    form = captured(source={"channel": "web_form"})
    assert email.lead_id != form.lead_id


def test_unknown_fields_are_kept() -> None:
    lead = captured(contact={"email": "a@firma.de", "fax": "+49 30 1234"}, shoe_size=44)
    assert lead.payload.contact.model_extra == {"fax": "+49 30 1234"}


def test_an_invalid_email_is_rejected_with_the_original_bytes() -> None:
    raw = orjson.dumps(inquiry(contact={"email": "max(at)firma.de"}))
    result = capture_inquiry(raw, AT, NOW, POLICY, EXCLUSIONS)
    assert reasons(result) == ["email_invalid"]
    assert isinstance(result, MessageRejected)
    assert base64.b64decode(result.payload.original_b64) == raw
    assert (result.payload.stage, result.payload.offset) == ("capture", 41)
    assert result.source is not None and result.source.channel == "web_form"


def test_nobody_to_contact_is_rejected() -> None:
    result = capture_inquiry(
        orjson.dumps(inquiry(contact={"company": "ACME"})), AT, NOW, POLICY, EXCLUSIONS
    )
    assert reasons(result) == ["no_contact_channel"]


def test_a_phone_number_alone_is_enough_to_follow_up() -> None:
    lead = captured(contact={"phone": "030 1234567"})
    assert lead.payload.contact.phone == "+49301234567"  # E.164, region DE from settings


def test_broken_json_and_wrong_types_are_rejected_not_raised() -> None:
    assert reasons(capture_inquiry(b'{"source": {"chan', AT, NOW, POLICY, EXCLUSIONS)) == [
        "not_json"
    ]
    wrong = orjson.dumps(inquiry(answers={"employees": "many"}))
    assert reasons(capture_inquiry(wrong, AT, NOW, POLICY, EXCLUSIONS)) == ["invalid_int_type"]
    assert reasons(capture_inquiry(None, AT, NOW, POLICY, EXCLUSIONS)) == ["empty_message"]


def test_a_rejection_keeps_the_channel_when_the_source_is_readable() -> None:
    wrong = capture_inquiry(
        orjson.dumps(inquiry(answers={"employees": "many"})), AT, NOW, POLICY, EXCLUSIONS
    )
    assert isinstance(wrong, MessageRejected)
    assert wrong.source is not None and wrong.source.channel == "web_form"
    cut = capture_inquiry(orjson.dumps(inquiry())[:-5], AT, NOW, POLICY, EXCLUSIONS)
    assert isinstance(cut, MessageRejected) and cut.source is None


def test_types_are_not_coerced() -> None:
    raw = orjson.dumps(inquiry(answers={"purchase_timeframe_months": "3"}))
    assert reasons(capture_inquiry(raw, AT, NOW, POLICY, EXCLUSIONS)) == ["invalid_int_type"]


def test_a_timestamp_without_time_zone_is_rejected() -> None:
    raw = orjson.dumps(inquiry(received_at="2026-11-22T10:00:00"))
    assert reasons(capture_inquiry(raw, AT, NOW, POLICY, EXCLUSIONS)) == ["invalid_value_error"]


def test_channel_names_are_normalised_and_checked() -> None:
    assert captured(source={"channel": "Trade_Fair"}).source.channel == "trade_fair"
    raw = orjson.dumps(inquiry(source={"channel": "web form!"}))
    assert reasons(capture_inquiry(raw, AT, NOW, POLICY, EXCLUSIONS)) == [
        "invalid_string_pattern_mismatch"
    ]
