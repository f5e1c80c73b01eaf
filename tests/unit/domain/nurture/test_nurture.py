"""Nurture as pure functions: fulfillment, the gate, segments, programs, caps,
quiet hours, consent, recycling and win-back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.config.yaml_model import load_yaml_model
from pipeline.domain.nurture.policy import NurturePolicy, fulfill_inquiry
from pipeline.domain.nurture.programs import (
    NurtureState,
    contact_at,
    due_step,
    explain_status,
    gate,
    input_id,
    nurture_status,
    on_activity,
    on_outcome,
    once,
    run_step,
    segments_of,
)
from pipeline.domain.qualify.scoring import qualify_lead
from pipeline.errors import ConfigError
from pipeline.worker.timers import parse
from schemas.envelope import utcnow
from schemas.inputs import Activity, CrmOutcome
from schemas.lead import (
    ActivityRecorded,
    LeadHandedOff,
    LeadNurtured,
    LeadQualified,
    OutcomeRecorded,
    ProfileGaps,
    TouchScheduled,
)
from tests.support.factories import NOW, enriched, recorded
from tests.support.routing import DAY, NURTURE, SCORING

MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # 11:00 in Berlin
CONSENT = {"marketing_email": True, "phone_contact": True}
KNOWN = {"decision_maker": True, "purchase_timeframe_months": 12}  # nothing left to ask


def qualified(**overrides: Any) -> LeadQualified:
    overrides.setdefault("consent", CONSENT)
    overrides.setdefault("answers", KNOWN)
    return qualify_lead(enriched(**overrides), SCORING)


def kept(
    event: LeadQualified, state: NurtureState | None = None, now: datetime = MONDAY
) -> tuple[NurtureState, LeadNurtured]:
    state, out = gate(event, state or NurtureState(), NURTURE, now, DAY)
    assert isinstance(out, LeadNurtured)
    return state, out


def step(
    lead: uuid.UUID, state: NurtureState, now: datetime, policy: NurturePolicy = NURTURE
) -> tuple[NurtureState, TouchScheduled | None]:
    """Fire the lead's earliest due step as the timer would, at `now`."""
    pending = state.next_due
    assert pending is not None and pending.due_at is not None
    fired = due_step(lead, pending.due_at, pending.key, now)
    assert fired is not None, "not due yet"
    return run_step(fired, state, policy, now, DAY)


def office(due: datetime) -> datetime:
    """The first weekday 10:00 UTC (office hours in Berlin) at or after `due`."""
    at = due.replace(hour=10, minute=0, second=0, microsecond=0)
    at += DAY * (at < due)
    while at.weekday() >= 5:
        at += DAY
    return at


def activity(lead: uuid.UUID, kind: str, **details: Any) -> ActivityRecorded:
    now = utcnow()
    payload = Activity(
        activity_id=f"a-{uuid.uuid4().hex[:6]}",
        occurred_at=now,
        activity_type=kind,  # type: ignore[arg-type]
        lead_id=lead,
        details=details,
    )
    return ActivityRecorded(
        event_id=uuid.uuid4(), lead_id=lead, occurred_at=now, emitted_at=now, payload=payload
    )


def crm(lead: uuid.UUID, outcome: str) -> OutcomeRecorded:
    return recorded(
        CrmOutcome(
            outcome_id=f"o-{uuid.uuid4().hex[:6]}",
            lead_id=lead,
            occurred_at=utcnow(),
            outcome=outcome,  # type: ignore[arg-type]
        )
    )


# --- fulfillment -----------------------------------------------------------------


def test_every_inquiry_is_answered_with_the_package_for_its_interest() -> None:
    lead = enriched(answers={"purchase_timeframe_months": 0}, product_interest=["analytics"])
    touch = fulfill_inquiry(lead, NURTURE, NOW + timedelta(seconds=42))
    assert touch.payload.purpose == "fulfillment"
    assert touch.payload.content_id == "info-pack-analytics"
    assert touch.payload.channel == "email"
    assert touch.payload.recipient == "anna@firma.de"
    assert touch.payload.due_at == NOW + timedelta(seconds=42, minutes=5)
    assert touch.payload.response_seconds == 42  # the inquiry arrived at NOW
    assert (touch.lead_id, touch.trace_id) == (lead.lead_id, lead.trace_id)


def test_an_answer_delivered_twice_has_the_same_id() -> None:
    lead = enriched()
    assert (
        fulfill_inquiry(lead, NURTURE, NOW).event_id == fulfill_inquiry(lead, NURTURE, NOW).event_id
    )
    # an inquiry split off into a lead of its own is captured again: not a second answer
    split = lead.model_copy(update={"lead_id": uuid.uuid4(), "event_id": uuid.uuid4()})
    assert (
        fulfill_inquiry(split, NURTURE, NOW).event_id
        == fulfill_inquiry(lead, NURTURE, NOW).event_id
    )


def test_an_unknown_product_gets_the_general_package() -> None:
    touch = fulfill_inquiry(enriched(product_interest=["something-else"]), NURTURE, NOW)
    assert touch.payload.content_id == "info-pack-general"


# --- the gate and segments ---------------------------------------------------------


def test_hot_leads_pass_the_gate_at_once_with_their_contact_permissions() -> None:
    event = qualified(answers={"purchase_timeframe_months": 0}, consent={"phone_contact": True})
    _, out = gate(event, NurtureState(), NURTURE, MONDAY, DAY)
    assert isinstance(out, LeadHandedOff)
    assert out.payload.reason == "hot lead"
    p = out.payload.contact_permissions
    assert p is not None and (p.email, p.call, p.sms) == (False, True, True)


def test_a_cold_lead_enters_the_cold_program_its_first_step_a_day_later() -> None:
    state, out = kept(qualified())
    assert out.payload.entered == ["cold-leads"] and out.payload.programs == ["cold-leads"]
    assert out.payload.next_step_at == MONDAY + DAY
    assert out.payload.reason == "qualified: cold mql"
    assert state.next_due is not None and state.next_due.key == "cold-leads:1:0"


def test_webinar_sign_ups_are_a_segment_with_their_own_program() -> None:
    state, out = kept(qualified(source={"channel": "webinar"}))
    assert segments_of(state, NURTURE) == ["webinar-sign-ups"]
    assert out.payload.entered == ["webinar-follow-up", "cold-leads"]


def test_a_webinar_registration_puts_a_nurtured_lead_in_the_segment_and_its_program() -> None:
    event = qualified()
    state, _ = kept(event)
    state, out = on_activity(
        activity(event.lead_id, "webinar_registered"), state, NURTURE, MONDAY, DAY
    )
    assert out is not None and out.payload.entered == ["webinar-follow-up"]
    assert out.payload.segments == ["webinar-sign-ups"]


def test_missing_profile_fields_enter_the_program_that_asks_for_them() -> None:
    event = qualified()
    gaps = ProfileGaps(should=["industry", "decision_maker"])
    profile = event.payload.profile.model_copy(update={"missing": gaps})
    event = event.model_copy(
        update={"payload": event.payload.model_copy(update={"profile": profile})}
    )
    _, out = kept(event)
    assert out.payload.entered == ["cold-leads", "complete-profile"]


# --- steps in order, conditions, consent ---------------------------------------------


def test_a_program_walks_its_steps_in_order_each_after_its_delay() -> None:
    event = qualified()
    state, _ = kept(event)
    sent = []
    for _ in range(3):
        pending = state.next_due
        assert pending is not None and pending.due_at is not None
        state, touch = step(event.lead_id, state, office(pending.due_at))
        assert touch is not None
        sent.append((touch.payload.step, touch.payload.content_id))
    assert sent == [(1, "nurture-intro-cold"), (2, "industry-guide"), (3, "newsletter-invite")]
    assert state.next_due is None and state.enrollments[0].ended == "completed"


def test_a_step_is_not_sent_before_it_is_due() -> None:
    event = qualified()
    state, _ = kept(event)
    pending = state.next_due
    assert pending is not None and pending.due_at is not None
    assert due_step(event.lead_id, pending.due_at, pending.key, MONDAY) is None


def test_a_step_fired_twice_sends_one_touch_and_a_redelivery_the_same_one() -> None:
    event = qualified()
    state, _ = kept(event)
    pending = state.next_due
    assert pending is not None and pending.due_at is not None
    now = MONDAY + DAY
    fired = due_step(event.lead_id, pending.due_at, pending.key, now)
    assert fired is not None
    again = due_step(event.lead_id, pending.due_at, pending.key, now + timedelta(seconds=5))
    assert again is not None and again.event_id == fired.event_id

    def apply(s: NurtureState) -> tuple[NurtureState, Any]:
        return run_step(fired, s, NURTURE, now, DAY)

    after, touch = once(state, input_id(fired), apply)
    repeat_state, repeat = once(after, input_id(fired), apply)
    assert touch is not None and repeat is not None and repeat.event_id == touch.event_id
    assert repeat_state == after
    # redelivered after later inputs were applied (their events may be lost alike)
    later = after
    for n in range(3):
        later, _ = once(later, f"input-{n}", lambda s: (s, touch))
    _, still = once(later, input_id(fired), apply)
    assert still is not None and still.event_id == touch.event_id
    # the same step computed again from the old state (a crash before the state was stored)
    _, recomputed = once(state, input_id(fired), apply)
    assert recomputed is not None and recomputed.event_id == touch.event_id


def test_a_step_whose_condition_fails_is_skipped() -> None:
    event = qualified(source={"channel": "webinar"})  # cold: the warm-only call is skipped
    state, _ = kept(event)
    state = state.model_copy(update={"enrollments": state.enrollments[:1]})  # webinar only
    sent = []
    while (pending := state.next_due) is not None:
        assert pending.due_at is not None
        state, touch = step(event.lead_id, state, office(pending.due_at))
        sent.append(touch.payload.content_id if touch else None)
    assert sent == ["webinar-recording", "webinar-case-study", None]
    assert state.history[-2].detail == "its condition does not hold"


def test_no_touch_on_a_channel_without_consent() -> None:
    event = qualified(consent={"marketing_email": False})
    state, out = kept(event)
    assert not out.payload.contact_permissions.email
    state, touch = step(event.lead_id, state, MONDAY + DAY)
    assert touch is None
    assert state.history[-1].event == "skipped"
    assert state.history[-1].detail == "no permission to contact by email"


# --- exits and the gate ----------------------------------------------------------------


def test_a_nurtured_lead_that_becomes_hot_leaves_its_programs_and_goes_to_sales() -> None:
    state, _ = kept(qualified())
    hot = qualified(answers={**KNOWN, "purchase_timeframe_months": 0})
    state, out = gate(hot, state, NURTURE, MONDAY + DAY, DAY)
    assert isinstance(out, LeadHandedOff)
    assert state.next_due is None
    assert [e.ended for e in state.enrollments] == ["became_hot"]


def test_a_reply_ends_the_program_and_an_unsubscribe_withdraws_the_channel() -> None:
    event = qualified()
    state, _ = kept(event)
    state, out = on_activity(activity(event.lead_id, "replied"), state, NURTURE, MONDAY, DAY)
    assert out is not None and out.payload.left == ["cold-leads"]
    assert out.payload.reason == "activity: replied"
    state, _ = on_activity(
        activity(event.lead_id, "unsubscribed", channel="sms"), state, NURTURE, MONDAY, DAY
    )
    p = state.permissions
    assert (p.email, p.call, p.sms, p.do_not_contact) == (True, True, False, False)


def test_do_not_contact_ends_every_program_and_every_permission() -> None:
    event = qualified(source={"channel": "webinar"})
    state, _ = kept(event)
    state, out = on_activity(activity(event.lead_id, "do_not_contact"), state, NURTURE, MONDAY, DAY)
    assert out is not None and set(out.payload.left) == {"webinar-follow-up", "cold-leads"}
    p = out.payload.contact_permissions
    assert p.do_not_contact and not (p.email or p.call or p.sms)
    state, out = kept(qualified(inquiry_id="form-2"), state)  # a new inquiry starts nothing
    assert out.payload.entered == [] and state.next_due is None


def test_touch_results_are_kept_in_the_history() -> None:
    event = qualified()
    state, _ = kept(event)
    state, touch = step(event.lead_id, state, MONDAY + DAY)
    assert touch is not None
    opened = activity(event.lead_id, "email_opened", touch_id=str(touch.event_id))
    state, out = on_activity(opened, state, NURTURE, MONDAY + DAY, DAY)
    assert out is None  # nothing changed in the programs
    assert state.history[-1].detail == f"email_opened {touch.event_id}"


def test_a_retired_lead_leaves_its_programs() -> None:
    event = qualified()
    state, _ = kept(event)
    retired = event.payload.model_copy(update={"decision": "retire", "reason": "8 iterations"})
    state, out = kept(
        event.model_copy(update={"payload": retired, "event_id": uuid.uuid4()}), state
    )
    assert out.payload.left == ["cold-leads"] and out.payload.reason == "retired: 8 iterations"


# --- recycling and win-back --------------------------------------------------------------


def test_returned_and_lost_leads_are_recycled_each_time() -> None:
    event = qualified(answers={**KNOWN, "purchase_timeframe_months": 0})
    state, _ = gate(event, NurtureState(), NURTURE, MONDAY, DAY)
    state, out = on_outcome(crm(event.lead_id, "returned"), state, NURTURE, MONDAY, DAY)
    assert out is not None and out.payload.entered == ["recycle"]
    assert out.payload.next_step_at == MONDAY + 30 * DAY
    state, out = on_outcome(crm(event.lead_id, "lost"), state, NURTURE, MONDAY, DAY)
    assert out is not None and out.payload.entered == []  # still in it
    state = state.model_copy(
        update={
            "enrollments": [e.model_copy(update={"ended": "completed"}) for e in state.enrollments]
        }
    )
    state, out = on_outcome(crm(event.lead_id, "lost"), state, NURTURE, MONDAY, DAY)
    assert out is not None and out.payload.entered == ["recycle"]
    assert [e.run for e in state.enrollments] == [1, 2]


def test_a_churned_customer_enters_win_back() -> None:
    event = qualified(answers={**KNOWN, "purchase_timeframe_months": 0})
    state, _ = gate(event, NurtureState(), NURTURE, MONDAY, DAY)
    _, out = on_outcome(crm(event.lead_id, "churned"), state, NURTURE, MONDAY, DAY)
    assert out is not None and out.payload.entered == ["win-back"]
    assert out.payload.reason == "crm: churned"
    _, nothing = on_outcome(crm(event.lead_id, "contacted"), state, NURTURE, MONDAY, DAY)
    assert nothing is None


# --- not pushy: caps, quiet hours, weekends, time zones --------------------------------------


def test_the_frequency_cap_counts_touches_of_all_programs() -> None:
    state, _ = kept(qualified())
    first, second = MONDAY, MONDAY + timedelta(days=2)
    state = state.model_copy(update={"touched_at": [first, second]})
    now = MONDAY + timedelta(days=3)  # a Thursday: 2 touches in the last 7 days already
    assert contact_at(state, NURTURE, now, DAY) == first + 7 * DAY
    assert contact_at(state, NURTURE, first + 8 * DAY, DAY) == first + 8 * DAY


def test_a_capped_step_is_postponed_not_dropped() -> None:
    event = qualified()
    state, _ = kept(event)
    state = state.model_copy(update={"touched_at": [MONDAY, MONDAY + timedelta(hours=1)]})
    state, touch = step(event.lead_id, state, MONDAY + DAY)
    assert touch is None and state.history[-1].event == "postponed"
    assert state.next_due is not None and state.next_due.due_at == MONDAY + 7 * DAY
    state, touch = step(event.lead_id, state, MONDAY + 7 * DAY)
    assert touch is not None and touch.payload.step == 1


@pytest.mark.parametrize(
    ("now", "contact", "expected"),
    [
        # 22:30 in Berlin → 08:00 the next morning
        (datetime(2026, 11, 23, 21, 30, tzinfo=UTC), {}, datetime(2026, 11, 24, 7, 0, tzinfo=UTC)),
        # Saturday noon → Monday 08:00
        (datetime(2026, 11, 28, 11, 0, tzinfo=UTC), {}, datetime(2026, 11, 30, 7, 0, tzinfo=UTC)),
        # 10:00 UTC is 05:00 in New York (country US) → 08:00 there
        (MONDAY, {"country": "US"}, datetime(2026, 11, 23, 13, 0, tzinfo=UTC)),
        # the lead's own zone wins over its country
        (MONDAY, {"country": "US", "time_zone": "Asia/Tokyo"}, MONDAY),
        # office hours in Berlin: at once
        (MONDAY, {}, MONDAY),
    ],
)
def test_quiet_hours_and_weekends_on_the_leads_clock(
    now: datetime, contact: dict[str, str], expected: datetime
) -> None:
    base = {"first_name": "Anna", "email": "anna@firma.de"}
    state, _ = kept(qualified(contact={**base, **contact}))
    assert contact_at(state, NURTURE, now, DAY) == expected


def test_tokyo_evening_is_quiet_even_when_berlin_works() -> None:
    zone_contact = {"email": "anna@firma.de", "time_zone": "Asia/Tokyo"}
    state, _ = kept(qualified(contact=zone_contact))
    at = contact_at(state, NURTURE, datetime(2026, 11, 23, 12, 0, tzinfo=UTC), DAY)  # 21:00 JST
    assert at == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # 08:00 JST on Tuesday


def test_status_shows_programs_next_step_and_history() -> None:
    event = qualified()
    state, _ = kept(event)
    state, _ = step(event.lead_id, state, MONDAY + DAY)
    status = nurture_status(state, NURTURE)
    (cold,) = status.programs
    assert (cold.program, cold.next_step, cold.steps) == ("cold-leads", 2, 3)
    assert cold.next_touch == "email industry-guide"
    lines = explain_status(status)
    assert lines[1] == "may contact by: email, call, sms"
    assert any("touch" in line and "nurture-intro-cold" in line for line in lines)


# --- the rule file ------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nurture.yaml"
    path.write_text("fulfillment: {default_content: info}\n" + text)
    return path


def test_a_program_naming_an_unknown_segment_is_a_clear_config_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "programs:\n  p:\n    entry: {segments: [webinar]}\n"
        "    steps: [{content: c, after_days: 1}]\n",
    )
    with pytest.raises(ConfigError, match="segment 'webinar', which is not under segments"):
        load_yaml_model(path, NurturePolicy)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("segments: {s: {label: nothing}}\n", "a segment needs at least one of"),
        ("contact_policy: {default_time_zone: Mars/Olympus}\n", "unknown time zone"),
        ("programs: {p: {steps: []}}\n", "programs.p.steps"),
        ("programs: {p: {steps: [{content: c, after_days: 1, channel: fax}]}}\n", "channel"),
        (
            "programs: {p: {entry: {triggers: [someday]}, steps: [{content: c, after_days: 1}]}}\n",
            "triggers",
        ),
        ("programs: {p: {exit_on: [bored], steps: [{content: c, after_days: 1}]}}\n", "exit_on"),
    ],
)
def test_rule_mistakes_name_the_key(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_yaml_model(write(tmp_path, text), NurturePolicy)


def test_a_shorter_nurture_day_shrinks_delays_and_cap_windows() -> None:
    second = timedelta(seconds=1)  # LEADFLOW_NURTURE_DAY_SECONDS=1, as the tests run it
    state, out = gate(qualified(), NurtureState(), NURTURE, MONDAY, second)
    assert isinstance(out, LeadNurtured) and out.payload.next_step_at == MONDAY + second
    state = state.model_copy(update={"touched_at": [MONDAY, MONDAY]})
    assert contact_at(state, NURTURE, MONDAY + second, second) == MONDAY + 7 * second


def test_the_due_index_reads_qualifys_older_entries_too() -> None:
    assert parse(b"2026-11-23T10:00:00+00:00") == (MONDAY, "")
    assert parse(b"2026-11-23T10:00:00+00:00|cold-leads:1:0") == (MONDAY, "cold-leads:1:0")
    assert parse(b"") == (None, "")
