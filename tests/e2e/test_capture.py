"""Capture through the real broker and the running worker: every kind of bad
payload reaches `leads.rejected` with its reason, excluded inquiries get an
answer with the rule that excluded them, and findings travel with the lead."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from pipeline.adapters.kafka.client import publish
from pipeline.config.topics import load_topics
from pipeline.dev.harness import OutcomeWatcher, WorkerProcess
from schemas.lead import LeadCaptured, TouchScheduled
from schemas.rejected import MessageRejected
from tests.support.broker import read_topic
from tests.support.settings import isolated_settings

TIMEOUT_S = 120.0
SOURCE = {"channel": "web_form", "campaign": "e2e"}


def body(n: str, **contact: object) -> bytes:
    return orjson.dumps({"inquiry_id": n, "source": SOURCE, "contact": contact})


BAD: dict[str, tuple[bytes, set[str]]] = {
    "not json": (b'{"inquiry_id": "x", "sou', {"not_json"}),
    "empty": (b"", {"invalid_json_invalid", "not_json"}),
    "wrong type": (
        orjson.dumps(
            {"source": SOURCE, "contact": {"email": "a@b.de"}, "answers": {"employees": "x"}}
        ),
        {"invalid_int_type"},
    ),
    "missing source": (orjson.dumps({"contact": {"email": "a@b.de"}}), {"invalid_missing"}),
    "bad e-mail": (body("bad-mail", email="anna(at)firma.de"), {"email_invalid"}),
    "bad phone only": (body("bad-phone", phone="12"), {"phone_invalid", "no_contact_channel"}),
    "nobody to contact": (body("nobody", company="ACME"), {"no_contact_channel"}),
}
COMPETITOR = body("competitor", email="spy@wettbewerber-crm.de")
STUDENT = body("student", email="kim@cs.stanford.edu")
SAME_PERSON = [  # one person: web form, then the fair list, then an e-mail
    orjson.dumps(
        {"inquiry_id": "p-form", "source": SOURCE, "contact": {"email": "kai.berg@firma.de"}}
    ),
    orjson.dumps(
        {
            "inquiry_id": "p-fair",
            "source": {"channel": "trade_fair", "event": "it-sa-2026"},
            "contact": {"email": "Kai.Berg@FIRMA.de", "company": "Firma GmbH"},
        }
    ),
    orjson.dumps(
        {
            "inquiry_id": "p-mail",
            "source": {"channel": "email"},
            "contact": {"email": "kai.berg@firma.de"},
            "message": "Wann können wir telefonieren?",
        }
    ),
]
MISMATCH = body(
    "mismatch", email="a@firma.de", phone="0", postal_code="20095", city="Berlin", country="DE"
)


@pytest.fixture(scope="module")
def outcome(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    state: Path = tmp_path_factory.mktemp("capture")
    settings = isolated_settings(kafka, state)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    with WorkerProcess(settings, state / "worker.log"):
        values = [raw for raw, _ in BAD.values()] + [COMPETITOR, STUDENT, MISMATCH]
        values += SAME_PERSON

        async def feed() -> dict[str, object]:
            watcher = OutcomeWatcher(settings.kafka_bootstrap, topics)
            await watcher.start()
            try:
                positions = await publish(settings.kafka_bootstrap, topics.inquiries.name, values)
                deadline = time.monotonic() + TIMEOUT_S
                pending = list(zip(values, positions, strict=True))
                while pending and time.monotonic() < deadline:
                    await watcher.poll()
                    pending = [p for p in pending if not watcher.outcomes.accounted(*p)]
            finally:
                await watcher.stop()
            read = {
                name: [raw for _, raw in await read_topic(settings.kafka_bootstrap, spec)]
                for name, spec in (
                    ("rejected", topics.rejected),
                    ("touches", topics.touches),
                    ("captured", topics.captured),
                )
            }
            return {"pending": pending, "positions": positions, **read}

        yield asyncio.run(feed())


def test_every_bad_payload_is_rejected_with_its_reason_and_bytes(outcome: dict) -> None:
    assert outcome["pending"] == []
    rejections = [MessageRejected.model_validate_json(raw).payload for raw in outcome["rejected"]]
    by_offset = {(r.partition, r.offset): r for r in rejections}
    for (name, (raw, expected)), at in zip(BAD.items(), outcome["positions"], strict=False):
        rejection = by_offset[(at.partition, at.offset)]
        codes = {r.code for r in rejection.reasons}
        assert codes & expected, (name, codes)
        assert base64.b64decode(rejection.original_b64) == raw, name
    assert len(rejections) == len(BAD)


def test_excluded_inquiries_are_answered_with_the_rule(outcome: dict) -> None:
    reasons = {TouchScheduled.model_validate_json(raw).payload.reason for raw in outcome["touches"]}
    assert "excluded: competitor (wettbewerber-crm.de)" in reasons
    assert "excluded: student or pupil (e-mail domain)" in reasons
    captured = [LeadCaptured.model_validate_json(raw) for raw in outcome["captured"]]
    ids = {c.payload.inquiry_id for c in captured}
    assert not ids & {"competitor", "student"}  # excluded: no sales lead


def test_findings_travel_with_a_plausible_lead(outcome: dict) -> None:
    captured = [LeadCaptured.model_validate_json(raw) for raw in outcome["captured"]]
    (lead,) = [c for c in captured if c.payload.inquiry_id == "mismatch"]
    assert [f.code for f in lead.payload.findings] == ["phone_invalid", "postal_code_city_mismatch"]


def test_one_person_by_three_channels_is_one_lead(outcome: dict) -> None:
    captured = [LeadCaptured.model_validate_json(raw) for raw in outcome["captured"]]
    person = {c.payload.inquiry_id: c for c in captured if c.payload.inquiry_id.startswith("p-")}
    assert set(person) == {"p-form", "p-fair", "p-mail"}
    assert len({c.lead_id for c in person.values()}) == 1
    assert {c.source.channel for c in person.values()} == {"web_form", "trade_fair", "email"}
    assert sorted(c.merged for c in person.values()) == [False, True, True]
    assert len({c.trace_id for c in person.values()}) == 3  # each inquiry keeps its trace


def test_every_inquiry_of_a_known_person_is_answered(outcome: dict) -> None:
    captured = [LeadCaptured.model_validate_json(raw) for raw in outcome["captured"]]
    traces = {c.trace_id for c in captured if c.payload.inquiry_id.startswith("p-")}
    touches = [TouchScheduled.model_validate_json(raw) for raw in outcome["touches"]]
    answers = [t.trace_id for t in touches if t.payload.purpose == "fulfillment"]
    assert sorted(t for t in answers if t in traces) == sorted(traces)  # each once
