"""What outside producers send is held to a size and to finite numbers, what the
worker sends is measured before it is sent, and an inquiry's date must be
plausible: each is a rejection or a finding with a reason, never a crash and
never a silent change."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import faust
import orjson
import pytest
import structlog
from aiokafka.errors import KafkaConnectionError
from structlog.testing import capture_logs

from pipeline.config.reference import reference_data
from pipeline.config.rules import load_rules
from pipeline.config.settings import SHIPPED_TOPICS, load_settings
from pipeline.config.topics import load_topics
from pipeline.domain.capture.inquiry import capture_inquiry
from pipeline.domain.capture.intake import Accepted, parse_submission
from pipeline.domain.capture.plausibility import check_received
from pipeline.domain.identify.identity import route_activity
from pipeline.domain.messages import MAX_ORIGINAL_BYTES, Position, decode
from pipeline.errors import ConfigError
from pipeline.reporting.events import event_row
from pipeline.worker.faust_app import faust_app
from pipeline.worker.stage import EXIT_EMIT_FAILED, Emitted, Outgoing, Stage
from schemas.inputs import Activity, CrmOutcome
from schemas.lead import ActivityRecorded, InquiryAccepted
from schemas.rejected import MessageRejected
from tests.support.factories import AT, EXCLUSIONS, NOW, POLICY, identify, inquiry, new_book
from tests.support.loop import LAST_LOGS, run_agent

TOPICS = load_topics(SHIPPED_TOPICS)


@pytest.fixture(autouse=True)
def _plain_logging() -> None:
    """The CLI tests leave the CLI's logging configured (loggers cached on first use,
    printing to a captured stream that is closed by now): the stage's logger must not
    be cached on it here, or a later test's log line fails."""
    structlog.reset_defaults()


LEAD = "6f1c3a4e-0000-4000-8000-000000000000"


def activity(**fields: object) -> dict[str, object]:
    return {
        "activity_id": "a-1",
        "occurred_at": "2026-11-22T10:00:00+00:00",
        "activity_type": "page_view",
        "lead_id": LEAD,
        **fields,
    }


def outcome(**fields: object) -> dict[str, object]:
    return {
        "outcome_id": "o-1",
        "lead_id": LEAD,
        "occurred_at": "2026-11-22T10:00:00+00:00",
        "outcome": "won",
        **fields,
    }


def codes(result: object) -> list[tuple[str, str | None]]:
    assert isinstance(result, MessageRejected), result
    return [(r.code, r.field) for r in result.payload.reasons]


# --- size -----------------------------------------------------------------------------


def test_only_the_topics_outside_producers_write_have_a_limit() -> None:
    settings = load_settings()
    limited = {spec.name for spec in TOPICS.all() if settings.input_limit(spec) is not None}
    assert limited == {"leads.inquiries", "leads.activity", "crm.feedback"}
    assert settings.input_max_bytes == 256 * 1024
    assert settings.max_message_bytes == 1_000_000


def test_an_input_limit_above_the_message_limit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="LEADFLOW_INPUT_MAX_BYTES"):
        load_settings(input_max_bytes=2_000_000, max_message_bytes=1_000_000)


@pytest.mark.parametrize(
    ("model", "topic", "body"),
    [
        (Activity, "leads.activity", activity(details={"blob": "x" * 5_000_000})),
        (CrmOutcome, "crm.feedback", outcome(crm_id="c", blob="x" * 5_000_000)),
    ],
    ids=["activity", "outcome"],
)
def test_an_oversized_activity_or_outcome_is_rejected_with_its_first_bytes(
    model: type[Activity | CrmOutcome], topic: str, body: dict[str, object]
) -> None:
    raw = orjson.dumps(body)
    at = Position(topic, 3, 17)
    assert isinstance(model.model_validate_json(raw), model)  # valid, only too large
    result = decode(model, raw, at, "attach-activity", max_bytes=256 * 1024)
    assert codes(result) == [("too_large", None)]
    assert isinstance(result, MessageRejected)
    assert result.payload.original_size == len(raw) and result.payload.original_truncated
    assert base64.b64decode(result.payload.original_b64) == raw[:MAX_ORIGINAL_BYTES]
    assert (result.payload.topic, result.payload.offset) == (topic, 17)
    assert len(result.model_dump_json()) < 512 * 1024
    assert isinstance(decode(model, raw, at, "x"), model)  # no limit: an internal topic


def test_the_inquiry_limit_is_the_setting() -> None:
    raw = orjson.dumps(inquiry(message="x" * 9_000))
    assert isinstance(capture_inquiry(raw, AT, NOW, POLICY, EXCLUSIONS), InquiryAccepted)
    small = capture_inquiry(raw, AT, NOW, POLICY, EXCLUSIONS, max_bytes=4096)
    assert codes(small) == [("too_large", None)]


def test_the_warehouse_keeps_only_the_size_of_an_oversized_input() -> None:
    """A 5 MB "won" outcome is no win: its row has no lead and no content."""
    raw = orjson.dumps(outcome(amount_eur=10_000_000.0, blob="x" * 5_000_000))
    row = event_row(TOPICS.feedback, raw, Position("crm.feedback", 0, 5), max_bytes=256 * 1024)
    assert (row["event_type"], row["lead_id"]) == ("Oversized", None)
    assert orjson.loads(row["payload"]) == {"original_size": len(raw), "max_bytes": 256 * 1024}
    normal = event_row(TOPICS.feedback, orjson.dumps(outcome()), AT, max_bytes=256 * 1024)
    assert (normal["event_type"], normal["lead_id"]) == ("CrmOutcomeReported", LEAD)


@pytest.fixture
def stage(tmp_path: Path) -> Stage:
    settings = load_settings(state_dir=tmp_path, max_message_bytes=600_000)
    app: faust.App = faust_app(settings, 6)
    rules = load_rules(settings.rules_dir)
    return Stage(app, settings, TOPICS, rules, reference_data(None))


def recorded(blob_bytes: int) -> ActivityRecorded:
    payload = Activity.model_validate_json(orjson.dumps(activity(details={"b": "x" * blob_bytes})))
    return ActivityRecorded(
        event_id=uuid.uuid4(), lead_id=uuid.UUID(LEAD), occurred_at=NOW, emitted_at=NOW,
        payload=payload,
    )  # fmt: skip


def test_an_event_the_broker_would_refuse_is_a_rejection_of_its_input(stage: Stage) -> None:
    raw = b'{"the": "input"}'
    at = Position("leads.activity", 1, 9)
    small, big = recorded(1_000), recorded(600_000)
    [(event, message)] = stage.outgoing([small], raw, at, "attach-activity")
    assert event is small and message.spec == TOPICS.lead_activity
    with capture_logs() as logs:
        [(event, message)] = stage.outgoing([small, big], raw, at, "attach-activity")
    assert [(e["event"], e["log_level"]) for e in logs] == [("stage.output_too_large", "warning")]
    assert codes(event) == [("output_too_large", None)]  # and `small` is not sent either
    assert isinstance(event, MessageRejected) and event.payload.offset == 9
    assert message.spec == TOPICS.rejected and len(message.value) < 600_000
    assert "ActivityRecorded would be" in event.payload.reasons[0].message


def test_activities_kept_for_an_unknown_person_stay_within_one_message() -> None:
    """They are one table value, so one changelog message: four activities of 250 kB
    would be one the broker refuses (and Faust's send of it would fail)."""
    book = new_book()
    blob = "x" * 250_000
    results = [
        identify(
            book,
            route_activity(
                Activity.model_validate_json(orjson.dumps(activity(
                    activity_id=f"a{i}", lead_id=None, email="bot@x.de", details={"b": blob}
                ))),
                b"{}", AT, "DE", NOW,
            ),
        )
        for i in range(4)
    ]  # fmt: skip
    assert results[:3] == [[], [], []]
    [rejected] = results[3]
    assert codes(rejected) == [("unattached_activities_too_large", None)]
    [kept] = book.waiting.values()
    assert len(kept) == 3 and len(orjson.dumps(kept)) <= book.waiting_max_bytes


class Exited(Exception):
    pass


def run_loop(
    stage: Stage, handle: Callable[[bytes | None, Position], Emitted], fail: Exception | None
) -> list[Outgoing]:
    """Two messages through a stage's loop, with a send that records or fails."""
    stage.raw_agent(TOPICS.activity, "loop", lambda received: handle(received.raw, received.at))
    return run_agent(stage, "loop", [b'{"n": 0}', b'{"n": 1}'], fail)[0]


def logged() -> list[tuple[str, str]]:
    """The log lines of the last `run_loop`."""
    return [(e["event"], e["log_level"]) for e in LAST_LOGS]


def test_the_stage_goes_on_after_an_event_too_large(stage: Stage) -> None:
    big, small = recorded(600_000), recorded(10)
    sent = run_loop(stage, lambda raw, at: big if at.offset == 0 else small, fail=None)
    assert [m.spec for m in sent] == [TOPICS.rejected, TOPICS.lead_activity]
    assert b"output_too_large" in sent[0].value
    assert ("stage.output_too_large", "warning") in logged()


def test_a_send_that_fails_otherwise_still_stops_the_worker(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broker down: the message must be read again after a restart, not committed past."""
    exits: list[int] = []

    def exit_(code: int) -> None:
        exits.append(code)
        raise Exited

    monkeypatch.setattr(os, "_exit", exit_)
    with pytest.raises(Exited):
        run_loop(stage, lambda raw, at: recorded(10), fail=KafkaConnectionError())
    assert exits == [EXIT_EMIT_FAILED]
    assert logged() == [("stage.emit_failed", "critical")]


# --- non-finite numbers ---------------------------------------------------------------


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"NaN", b"Infinity", b"-Infinity"])
def test_a_non_finite_order_volume_is_rejected_not_dropped(number: bytes) -> None:
    raw = orjson.dumps(inquiry(answers={"order_volume_eur": 123456.0})).replace(b"123456.0", number)
    assert number in raw
    result = capture_inquiry(raw, AT, NOW, POLICY, EXCLUSIONS)
    assert codes(result) == [("invalid_finite_number", "answers.order_volume_eur")]


def test_large_finite_numbers_stay_numbers() -> None:
    raw = orjson.dumps(inquiry(answers={"order_volume_eur": 1e300}))
    lead = capture_inquiry(raw, AT, NOW, POLICY, EXCLUSIONS)
    assert isinstance(lead, InquiryAccepted)
    assert lead.payload.answers.order_volume_eur == 1e300


def test_non_finite_numbers_in_unknown_fields_are_rejected_too() -> None:
    """Kept extras would otherwise reach later stages as null."""
    raw = orjson.dumps(inquiry(answers={"budget": [1, 2.5]})).replace(b"2.5", b"NaN")
    assert codes(capture_inquiry(raw, AT, NOW, POLICY, EXCLUSIONS)) == [
        ("invalid_finite_number", "answers.budget")
    ]
    raw = orjson.dumps(activity(details={"score": {"value": 0.5}})).replace(b"0.5", b"1e999")
    rejected = decode(Activity, raw, AT, "attach-activity")
    assert codes(rejected) == [("invalid_finite_number", "details.score")]
    assert isinstance(rejected, MessageRejected)
    assert "(at value)" in rejected.payload.reasons[0].message


@pytest.mark.parametrize("number", [b"1e400", b"NaN", b"Infinity"])
def test_a_non_finite_crm_amount_is_rejected(number: bytes) -> None:
    raw = orjson.dumps(outcome(amount_eur=1000.5)).replace(b"1000.5", number)
    assert codes(decode(CrmOutcome, raw, AT, "crm-feedback")) == [
        ("invalid_finite_number", "amount_eur")
    ]


@pytest.mark.parametrize("number", [b"1e400", b"NaN", b"-Infinity"])
def test_the_http_intake_names_a_non_finite_number(number: bytes) -> None:
    body = orjson.dumps(inquiry(answers={"order_volume_eur": 5.5})).replace(b"5.5", number)
    result = parse_submission(body, "application/json", "web_form", None)
    assert not isinstance(result, Accepted)
    assert [(r.code, r.field) for r in result] == [
        ("invalid_finite_number", "answers.order_volume_eur")
    ]
    broken = parse_submission(body[:-3], "application/json", "web_form", None)
    assert not isinstance(broken, Accepted) and [r.code for r in broken] == ["not_json"]


# --- dates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "topic", "body"),
    [
        (Activity, "leads.activity", activity(occurred_at="1970-01-01T00:00:00+00:00")),
        (CrmOutcome, "crm.feedback", outcome(occurred_at="1970-01-01T00:00:00+00:00")),
    ],
    ids=["activity", "outcome"],
)
def test_an_activity_or_outcome_dated_1970_is_rejected_and_not_reported(
    model: type[Activity | CrmOutcome], topic: str, body: dict[str, object]
) -> None:
    raw = orjson.dumps(body)
    oldest = NOW - timedelta(days=365)
    assert codes(decode(model, raw, AT, "crm-feedback", oldest=oldest)) == [
        ("occurred_at_implausible", "occurred_at")
    ]
    spec = TOPICS.by_name(topic)
    row = event_row(spec, raw, Position(topic, 0, 3), oldest=oldest)
    assert (row["event_type"], row["lead_id"], row["payload"]) == (
        "Implausible",
        None,
        raw.decode(),
    )
    recent = orjson.dumps({**body, "occurred_at": (oldest + timedelta(days=1)).isoformat()})
    assert isinstance(decode(model, recent, AT, "crm-feedback", oldest=oldest), model)
    assert event_row(spec, recent, AT, oldest=oldest)["lead_id"] == LEAD


def test_only_inputs_from_outside_are_held_to_a_plausible_date() -> None:
    settings = load_settings()
    dated = {spec.name for spec in TOPICS.all() if settings.oldest_input(spec) is not None}
    assert dated == {"leads.inquiries", "leads.activity", "crm.feedback"}


@pytest.mark.parametrize(
    ("offset", "plausible"),
    [
        (timedelta(days=-364), True),
        (timedelta(minutes=59), True),
        (timedelta(days=-366), False),
        (timedelta(hours=2), False),
    ],
)
def test_a_date_is_plausible_within_a_year_back_and_an_hour_ahead(
    offset: timedelta, plausible: bool
) -> None:
    when, findings = check_received(NOW + offset, NOW, POLICY)
    assert (when == NOW + offset) is plausible
    assert [f.code for f in findings] == ([] if plausible else ["received_at_implausible"])


def test_an_inquiry_dated_1970_arrives_now_with_a_finding() -> None:
    raw = orjson.dumps(inquiry(received_at="1970-01-01T00:00:00Z"))
    lead = capture_inquiry(raw, AT, NOW, POLICY, EXCLUSIONS)
    assert isinstance(lead, InquiryAccepted)
    assert lead.payload.received_at == lead.occurred_at == NOW
    [finding] = lead.payload.findings
    assert (finding.code, finding.field) == ("received_at_implausible", "received_at")
    assert "1970-01-01T00:00:00+00:00" in finding.message
    undated = capture_inquiry(orjson.dumps(inquiry()), AT, NOW, POLICY, EXCLUSIONS)
    assert isinstance(undated, InquiryAccepted) and undated.payload.findings == []
