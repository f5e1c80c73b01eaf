"""HTTP intake without the server: keys, JSON and form bodies, idempotency."""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
from pydantic import SecretStr

from pipeline.config.access import authenticate
from pipeline.domain.capture.intake import Accepted, intake_position, parse_submission
from schemas.inquiry import Inquiry

KEYS = {"web_form": SecretStr("k-form-123"), "webinar": SecretStr("k-webinar-456")}
JSON = "application/json"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


def test_the_key_names_the_channel() -> None:
    assert authenticate(KEYS, "k-webinar-456") == "webinar"
    assert authenticate(KEYS, "k-form-12") is None
    assert authenticate(KEYS, None) is None
    assert authenticate(KEYS, "") is None
    assert authenticate({"web_form": SecretStr("")}, "") is None  # an empty key opens nothing


def accepted(body: bytes, content_type: str = JSON, key: str | None = None) -> Inquiry:
    result = parse_submission(body, content_type, "web_form", key)
    assert isinstance(result, Accepted), result
    return Inquiry.model_validate_json(result.value)


def test_a_json_body_gets_the_channel_of_its_key() -> None:
    inquiry = accepted(orjson.dumps({"contact": {"email": "a@firma.de"}, "utm": {"x": 1}}))
    assert inquiry.source.channel == "web_form"
    assert inquiry.model_extra == {"utm": {"x": 1}}  # unknown fields are kept


def test_another_channel_in_the_body_is_refused() -> None:
    body = orjson.dumps({"source": {"channel": "webinar"}, "contact": {"email": "a@firma.de"}})
    result = parse_submission(body, JSON, "web_form", None)
    assert [r.code for r in result] == ["channel_mismatch"]  # type: ignore[union-attr]


def test_the_idempotency_key_becomes_the_inquiry_id_unless_the_body_has_one() -> None:
    body = orjson.dumps({"contact": {"email": "a@firma.de"}})
    assert accepted(body, key="retry-1").inquiry_id == "retry-1"
    own = orjson.dumps({"inquiry_id": "form-9", "contact": {"email": "a@firma.de"}})
    assert accepted(own, key="retry-1").inquiry_id == "form-9"
    assert accepted(body).inquiry_id != accepted(body).inquiry_id  # a fresh id each time


def test_a_form_body_maps_flat_fields() -> None:
    form = urlencode(
        [
            ("email", "anna@firma.de"),
            ("first_name", "Anna"),
            ("campaign", "spring"),
            ("utm_source", "newsletter"),
            ("product_interest", "crm-suite"),
            ("product_interest", "analytics"),
            ("consent_marketing_email", "on"),
            ("message", "Bitte rufen Sie an."),
            ("phone", ""),
        ]
    ).encode()
    inquiry = accepted(form, FORM)
    assert inquiry.contact.email == "anna@firma.de" and inquiry.contact.phone is None
    assert (inquiry.source.campaign, inquiry.source.utm_source) == ("spring", "newsletter")
    assert inquiry.product_interest == ["crm-suite", "analytics"]
    assert inquiry.consent.marketing_email and not inquiry.consent.phone_contact
    assert inquiry.message == "Bitte rufen Sie an."


def test_bodies_that_cannot_be_an_inquiry_give_field_errors() -> None:
    def codes(body: bytes) -> list[str]:
        result = parse_submission(body, JSON, "web_form", None)
        assert not isinstance(result, Accepted)
        return [r.code for r in result]

    assert codes(b"{nope") == ["not_json"]
    assert codes(b"[1, 2]") == ["not_an_object"]
    assert codes(b'{"answers": {}}') == ["invalid_missing"]  # no contact
    assert codes(b'{"contact": {}, "answers": {"employees": "12"}}') == ["invalid_int_type"]


def test_the_same_rejected_body_has_the_same_place() -> None:
    assert intake_position(b"x") == intake_position(b"x") != intake_position(b"y")


def test_a_deeply_nested_body_is_refused_with_a_reason() -> None:
    deep = b'{"a":' * 600 + b"1" + b"}" * 600  # orjson reads it, but will not write it back
    result = parse_submission(deep, "application/json", "web_form", None)
    assert not isinstance(result, Accepted)
    assert [r.code for r in result] == ["too_deep"]


def multipart(fields: list[tuple[str, str]], boundary: str = "----form7MA4YWxk") -> bytes:
    """A body as a browser sends a `<form enctype="multipart/form-data">`."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields
    ]
    return ("".join(parts) + f"--{boundary}--\r\n").encode()


def test_a_multipart_form_body_maps_like_a_urlencoded_one() -> None:
    fields = [
        ("email", "jürgen.müller@firma.de"),
        ("last_name", "Müller"),
        ("company", "Müller & Söhne; Berlin"),
        ("product_interest", "crm-suite"),
        ("product_interest", "analytics"),
        ("message", "Line one\r\nline two -- with dashes"),
        ("consent_marketing_email", "on"),
    ]
    content_type = "multipart/form-data; boundary=----form7MA4YWxk"
    result = parse_submission(multipart(fields), content_type, "web_form", "mp-1")
    assert isinstance(result, Accepted)
    inquiry = Inquiry.model_validate_json(result.value)
    assert inquiry.inquiry_id == "mp-1" and inquiry.source.channel == "web_form"
    assert inquiry.contact.last_name == "Müller"
    assert inquiry.contact.company == "Müller & Söhne; Berlin"
    assert inquiry.product_interest == ["crm-suite", "analytics"]
    assert inquiry.message == "Line one\r\nline two -- with dashes"
    assert inquiry.consent.marketing_email
    broken = parse_submission(b"no parts at all", content_type, "web_form", None)
    assert not isinstance(broken, Accepted) and [r.code for r in broken] == ["not_form_data"]


def test_an_address_that_is_no_email_address_is_refused_at_once() -> None:
    """Capture would reject it later, and the visitor would never know."""
    for body, content_type in (
        (orjson.dumps({"contact": {"email": "nope"}}), JSON),
        (urlencode({"email": "anna@", "last_name": "Schmidt"}).encode(), FORM),
    ):
        result = parse_submission(body, content_type, "web_form", None)
        assert not isinstance(result, Accepted)
        assert [(r.code, r.field) for r in result] == [("email_invalid", "contact.email")]
    # a valid one with a name of someone else's inside passes
    fine = parse_submission(
        orjson.dumps({"contact": {"email": "anna.schmidt@schmidt-gmbh.de"}}), JSON, "web_form", None
    )
    assert isinstance(fine, Accepted)


def test_a_filled_honeypot_is_named_and_an_empty_one_is_no_field_of_the_inquiry() -> None:
    trapped = urlencode({"email": "bot@spam.example", "website": "http://spam.example"})
    result = parse_submission(trapped.encode(), FORM, "web_form", None, honeypot="website")
    assert not isinstance(result, Accepted) and [r.code for r in result] == ["honeypot"]
    as_json = orjson.dumps({"contact": {"email": "bot@spam.example"}, "website": "x"})
    result = parse_submission(as_json, JSON, "web_form", None, honeypot="website")
    assert not isinstance(result, Accepted) and [r.code for r in result] == ["honeypot"]
    empty = urlencode({"email": "anna@firma.de", "website": ""}).encode()
    person = parse_submission(empty, FORM, "web_form", None, honeypot="website")
    assert isinstance(person, Accepted) and b"website" not in person.value


def test_cors_answers_only_the_channels_origins() -> None:
    from pipeline.config.access import cors_headers

    site = "https://www.firma.de"
    assert cors_headers(site, [site])["Access-Control-Allow-Origin"] == site
    assert cors_headers("https://evil.example", [site]) == {}
    assert cors_headers(None, [site]) == {}  # a server, not a browser
    assert cors_headers("https://any.example", None)["Vary"] == "Origin"
