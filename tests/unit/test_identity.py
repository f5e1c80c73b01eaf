"""Identity resolution: one person, one lead, whichever channel they come by."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from pipeline.capture import capture_inquiry
from pipeline.identity import identity_key, resolve_identity
from schemas.inquiry import Contact
from schemas.lead import InquiryAccepted
from tests.unit.factories import AT, EXCLUSIONS, NOW, POLICY, inquiry


def accepted(**overrides: object) -> InquiryAccepted:
    result = capture_inquiry(orjson.dumps(inquiry(**overrides)), AT, NOW, POLICY, EXCLUSIONS)
    assert isinstance(result, InquiryAccepted), result
    return result


def test_the_identity_is_the_normalised_email_else_the_phone() -> None:
    assert accepted(contact={"email": "Anna@FIRMA.de"}).identity == "email:anna@firma.de"
    assert accepted(contact={"phone": "030 1234567"}).identity == "phone:+49301234567"
    assert identity_key(Contact()) is None


def test_the_same_person_by_another_channel_and_spelling_has_the_same_identity() -> None:
    form = accepted(contact={"email": "anna.schmidt@firma.de"})
    fair = accepted(
        inquiry_id="fair-7",
        source={"channel": "trade_fair"},
        contact={"email": " Anna.Schmidt@Firma.DE "},
    )
    assert form.identity == fair.identity
    assert form.lead_id != fair.lead_id  # two inquiries ...
    first = resolve_identity(form, None)
    second = resolve_identity(fair, first.lead_id)
    assert second.lead_id == first.lead_id and second.merged  # ... one lead
    assert second.payload.inquiry_id == "fair-7" and second.source.channel == "trade_fair"
    assert second.trace_id == fair.trace_id != first.trace_id


def test_a_new_person_keeps_the_lead_of_the_inquiry() -> None:
    first = accepted()
    lead = resolve_identity(first, None)
    assert (lead.lead_id, lead.merged) == (first.lead_id, False)
    assert resolve_identity(first, first.lead_id) == lead  # redelivery: same event


@given(st.emails())
def test_identity_keys_ignore_case(address: str) -> None:
    upper = identity_key(Contact(email=address.upper()))
    assert upper == identity_key(Contact(email=address.lower()))
    assert upper is not None and upper == upper.casefold()
