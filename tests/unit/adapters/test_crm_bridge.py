"""The CRM bridge's decisions: what an answer means, how long to wait, what the
CRM receives and what a refusal leaves in leads.rejected. No I/O."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from pipeline.adapters.crm_bridge import (
    refusal,
    retry_after_seconds,
    retry_delay,
    verdict,
    webhook_request,
)
from pipeline.domain.distribute.routing import QueueState, distribute_lead, route_lead
from pipeline.domain.messages import Position
from schemas.lead import LeadAssigned
from tests.support.routing import MONDAY_NOON, ROUTING, handoff


def assigned() -> LeadAssigned:
    lead = handoff(contact={"email": "ada@firma.fr", "country": "FR"})
    result, _ = distribute_lead(route_lead(lead, ROUTING), ROUTING, QueueState(), MONDAY_NOON)
    assert isinstance(result, LeadAssigned)
    return result


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "delivered"),
        (201, "delivered"),
        (202, "delivered"),
        (204, "delivered"),
        (None, "retry"),  # no answer: connection refused or reset, timeout
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (504, "retry"),
        (429, "retry"),
        (408, "retry"),
        (400, "refused"),
        (401, "refused"),
        (403, "refused"),
        (404, "refused"),
        (409, "refused"),
        (422, "refused"),
        (425, "refused"),
        (301, "refused"),  # redirects are not followed: a POST must not become a GET
        (307, "refused"),
    ],
)
def test_what_an_answer_means(status: int | None, expected: str) -> None:
    assert verdict(status) == expected


def test_the_delay_doubles_from_its_base_up_to_its_cap() -> None:
    assert [retry_delay(n, 0.5, 3.0) for n in range(1, 7)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert retry_delay(1, 0.2, 30.0) == 0.2
    assert retry_delay(60, 1.0, 30.0) == 30.0  # no overflow after a long outage


def test_retry_after_is_honoured_but_never_beyond_the_cap() -> None:
    assert retry_delay(1, 0.5, 30.0, retry_after=5.0) == 5.0
    assert retry_delay(4, 0.5, 30.0, retry_after=1.0) == 4.0  # the backoff is longer
    assert retry_delay(1, 0.5, 30.0, retry_after=3600.0) == 30.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),  # an HTTP date: the backoff decides
        ("-3", None),
        ("soon", None),
    ],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_the_crm_gets_the_event_as_json_with_its_id_as_idempotency_key() -> None:
    event = assigned()
    request = webhook_request("https://crm.example/hook", event, SecretStr("s3cret"))
    assert request.get_method() == "POST"
    assert request.full_url == "https://crm.example/hook"
    assert request.get_header("Idempotency-key") == str(event.event_id)
    assert request.get_header("Content-type") == "application/json"
    assert request.get_header("Authorization") == "Bearer s3cret"
    assert isinstance(request.data, bytes)
    assert LeadAssigned.model_validate_json(request.data) == event


def test_without_a_token_there_is_no_authorization_header() -> None:
    request = webhook_request("http://127.0.0.1:9/hook", assigned(), None)
    assert not request.has_header("Authorization")


def test_a_refused_lead_is_kept_with_its_reason_bytes_and_lead() -> None:
    event = assigned()
    raw = event.model_dump_json().encode()
    at = Position("leads.sales-ready", 3, 41)
    rejected = refusal(raw, at, event, 400)
    assert rejected.payload.stage == "crm-bridge"
    assert [r.code for r in rejected.payload.reasons] == ["crm_refused_400"]
    assert (rejected.payload.topic, rejected.payload.partition, rejected.payload.offset) == (
        "leads.sales-ready",
        3,
        41,
    )
    assert base64.b64decode(rejected.payload.original_b64) == raw
    assert rejected.lead_id == event.lead_id and rejected.trace_id == event.trace_id
    assert rejected.key() == str(event.lead_id).encode()
    assert refusal(raw, at, event, 400).event_id == rejected.event_id  # a redelivery is the same
