"""Plausibility: every validator with its reason code, and the normalisers' properties."""

from __future__ import annotations

import orjson
import phonenumbers
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config.reference import postal_table
from pipeline.domain.capture.inquiry import capture_inquiry
from pipeline.domain.capture.plausibility import (
    Plausibility,
    check_contact,
    normalise_phone,
)
from schemas.inquiry import Contact
from schemas.lead import LeadCaptured
from schemas.rejected import MessageRejected
from tests.support.factories import AT, EXCLUSIONS, NOW, POLICY, captured, inquiry


def codes(contact: Contact, policy: Plausibility = POLICY) -> tuple[list[str], list[str]]:
    checked = check_contact(contact, policy)
    return [r.code for r in checked.blocking], [r.code for r in checked.findings]


def test_phone_numbers_become_e164_with_the_default_region() -> None:
    assert normalise_phone("030 1234567", "DE") == "+49301234567"
    assert normalise_phone("(0)89 / 12 34 56-78", "DE") == "+498912345678"
    assert normalise_phone("01 42 68 53 00", "FR") == "+33142685300"
    assert normalise_phone("+44 20 7946 0958", "DE") == "+442079460958"  # explicit prefix wins
    assert normalise_phone("12", "DE") is None
    assert normalise_phone("keine Angabe", "DE") is None


def test_the_region_comes_from_the_contact_country_before_the_default() -> None:
    checked = check_contact(Contact(phone="01 42 68 53 00", country="FR"), POLICY)
    assert checked.contact.phone == "+33142685300"
    at_default = check_contact(Contact(phone="030 1234567"), Plausibility("FR", POLICY.postal))
    assert at_default.contact.phone == "+33301234567"  # read as a French number


def test_a_bad_phone_next_to_a_good_email_is_a_finding_not_a_rejection() -> None:
    assert codes(Contact(email="a@firma.de", phone="123")) == ([], ["phone_invalid"])


def test_a_bad_phone_as_the_only_channel_is_blocking() -> None:
    assert codes(Contact(phone="123")) == (["phone_invalid", "no_contact_channel"], [])


def test_emails_are_normalised_and_bad_ones_block() -> None:
    checked = check_contact(Contact(email="Anna.Schmidt@FIRMA.DE"), POLICY)
    assert checked.contact.email == "Anna.Schmidt@firma.de"
    assert codes(Contact(email="anna@firma")) == (["email_invalid"], [])
    assert codes(Contact(email="anna@@firma.de", phone="030 1234567")) == (["email_invalid"], [])


def test_german_postal_codes_have_five_digits() -> None:
    assert codes(Contact(email="a@firma.de", postal_code="1011", country="DE")) == (
        [],
        ["postal_code_invalid"],
    )
    assert codes(Contact(email="a@firma.de", postal_code="1O115", city="Berlin")) == (
        [],
        ["postal_code_invalid"],
    )
    # Other countries have other formats: Vienna's 1010 is fine.
    assert codes(Contact(email="a@firma.at", postal_code="1010", country="AT")) == ([], [])


def test_postal_code_and_city_must_fit_where_the_table_knows_the_city() -> None:
    fine = Contact(email="a@firma.de", postal_code="80331", city="München", country="DE")
    assert codes(fine) == ([], [])
    assert codes(fine.model_copy(update={"city": "  münchen "})) == ([], [])
    wrong = fine.model_copy(update={"city": "Berlin"})
    assert codes(wrong) == ([], ["postal_code_city_mismatch"])
    unknown_city = fine.model_copy(update={"city": "Kleinkleckersdorf"})
    assert codes(unknown_city) == ([], [])


def test_the_shipped_table_covers_the_big_cities() -> None:
    table = postal_table()
    assert table.fits("10115", "Berlin") is True
    assert table.fits("04109", "Leipzig") is True
    assert table.fits("20095", "Köln") is False
    assert table.fits("20095", "Buxtehude") is None


def test_unknown_country_codes_are_findings() -> None:
    assert codes(Contact(email="a@firma.de", country="XX")) == ([], ["country_unknown"])
    assert codes(Contact(email="a@firma.de", country="ch")) == ([], [])


def test_findings_travel_with_the_lead_and_the_contact_is_normalised() -> None:
    lead = captured(
        contact={
            "email": "a@firma.de",
            "phone": "0",
            "postal_code": "20095",
            "city": "Berlin",
            "country": "DE",
        }
    )
    assert isinstance(lead, LeadCaptured)
    assert [f.code for f in lead.payload.findings] == ["phone_invalid", "postal_code_city_mismatch"]
    assert lead.schema_version == "1.3"


def test_a_rejection_names_every_blocking_reason_with_a_message_and_field() -> None:
    raw = orjson.dumps(inquiry(contact={"email": "x(at)y.de", "phone": "12"}))
    result = capture_inquiry(raw, AT, NOW, POLICY, EXCLUSIONS)
    assert isinstance(result, MessageRejected)
    reasons = {r.code: r for r in result.payload.reasons}
    assert set(reasons) == {"email_invalid", "phone_invalid"}
    assert reasons["phone_invalid"].field == "contact.phone" and reasons["phone_invalid"].message


german_numbers = st.integers(min_value=1_000_000, max_value=99_999_999).map(lambda n: f"030 {n}")
noise = st.sampled_from([" ", "-", "/", ""])


@given(st.text(max_size=30), st.sampled_from(["DE", "AT", "FR", "US", "ZZ"]))
def test_phone_normalisation_never_raises_and_yields_valid_e164(text: str, region: str) -> None:
    result = normalise_phone(text, region)
    if result is not None:
        assert result.startswith("+") and result[1:].isdigit()
        assert phonenumbers.is_valid_number(phonenumbers.parse(result))


@given(german_numbers, noise)
def test_phone_normalisation_is_idempotent_and_ignores_formatting(number: str, sep: str) -> None:
    once = normalise_phone(number, "DE")
    assert normalise_phone(number.replace(" ", sep), "DE") == once
    if once is not None:
        assert normalise_phone(once, "US") == once  # E.164 reads the same in any region


@given(st.text(max_size=12), st.text(max_size=20))
def test_postal_checks_never_raise(postal_code: str, city: str) -> None:
    contact = Contact.model_construct(email="a@firma.de", postal_code=postal_code, city=city)
    checked = check_contact(contact, POLICY)
    assert not checked.blocking
