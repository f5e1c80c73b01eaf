"""Exclusion policies: excluded inquiries are answered, not turned into sales leads."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pipeline.config.yaml_model import load_yaml_model
from pipeline.domain.capture.exclusion import ExclusionPolicy, exclusion_for
from pipeline.domain.capture.inquiry import capture_inquiry, inquiry_key, lead_id_for
from pipeline.errors import ConfigError
from schemas.inquiry import Inquiry
from schemas.lead import InquiryAccepted, TouchScheduled
from tests.support.factories import AT, EXCLUSIONS, NOW, POLICY, inquiry


def excluded(policy: ExclusionPolicy = EXCLUSIONS, **overrides: object) -> str | None:
    return exclusion_for(Inquiry.model_validate(inquiry(**overrides)), "DE", policy)


def test_a_normal_inquiry_is_not_excluded() -> None:
    assert excluded() is None


def test_competitors_by_domain_and_subdomain() -> None:
    assert excluded(contact={"email": "spy@wettbewerber-crm.de"}) == (
        "competitor (wettbewerber-crm.de)"
    )
    assert excluded(contact={"email": "x@sales.wettbewerber-crm.de"}) is not None
    assert excluded(contact={"email": "x@nicht-wettbewerber-crm.de"}) is None


def test_students_by_job_title_word_or_domain() -> None:
    by_title = excluded(contact={"email": "lea@gmail.com", "job_title": "Werkstudentin Marketing"})
    assert by_title is None  # a working student is a word of its own, not "studentin"
    assert excluded(contact={"email": "lea@gmail.com", "job_title": "Schülerin"}) == (
        "student or pupil (job title)"
    )
    assert excluded(contact={"email": "kim@cs.stanford.edu"}) == (
        "student or pupil (e-mail domain)"
    )


def test_territory_uses_the_default_region_when_no_country_is_given() -> None:
    dach = EXCLUSIONS.model_copy(
        update={"territory": EXCLUSIONS.territory.model_copy(update={"countries": ["DE", "AT"]})}
    )
    assert excluded(dach, contact={"email": "a@firma.fr", "country": "FR"}) == (
        "outside the served territory (FR)"
    )
    assert excluded(dach, contact={"email": "a@firma.de"}) is None
    assert excluded(contact={"email": "a@firma.fr", "country": "FR"}) is None  # empty: served


def test_custom_rules_match_a_field_by_pattern() -> None:
    assert excluded(contact={"email": "a@firma.de", "last_name": "TEST"}) == (
        "custom rule test-entry"
    )
    assert excluded(contact={"email": "a@firma.de", "last_name": "Testmann"}) is None


def test_an_excluded_inquiry_gets_a_fulfillment_touch_with_the_reason() -> None:
    body = inquiry(contact={"email": "Spy@Wettbewerber-CRM.de"})
    result = capture_inquiry(orjson.dumps(body), AT, NOW, POLICY, EXCLUSIONS)
    assert isinstance(result, TouchScheduled)
    assert result.payload.reason == "excluded: competitor (wettbewerber-crm.de)"
    assert result.payload.content_id == EXCLUSIONS.answer.content
    assert result.payload.recipient == "Spy@wettbewerber-crm.de"
    key = inquiry_key(Inquiry.model_validate(body), AT)
    assert result.lead_id == lead_id_for(key)
    again = capture_inquiry(orjson.dumps(body), AT, NOW, POLICY, EXCLUSIONS)
    assert again.event_id == result.event_id  # a redelivery is the same touch


def test_plausibility_comes_first_exclusion_second() -> None:
    body = inquiry(contact={"email": "bad(at)wettbewerber-crm.de"})
    result = capture_inquiry(orjson.dumps(body), AT, NOW, POLICY, EXCLUSIONS)
    assert not isinstance(result, TouchScheduled | InquiryAccepted)


def test_bad_rules_fail_with_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "exclusions.yaml"
    path.write_text(
        "answer: {content: x}\nterritory: {countries: [Germany]}\n"
        "custom: [{name: a, field: contact.city, pattern: '(['}]\n"
    )
    with pytest.raises(ConfigError) as error:
        load_yaml_model(path, ExclusionPolicy)
    text = str(error.value)
    assert "territory.countries" in text and "custom.0.pattern" in text
