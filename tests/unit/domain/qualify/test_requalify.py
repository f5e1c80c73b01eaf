"""The re-qualification loop: every new datum, idempotent, retire, re-open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from pipeline.config.settings import SHIPPED_RULES
from pipeline.config.yaml_model import load_yaml_model
from pipeline.domain.qualify.requalify import (
    Change,
    LeadState,
    due,
    from_activity,
    from_enriched,
    from_outcome,
    from_timer,
    next_requalification,
    requalify,
)
from pipeline.domain.qualify.scoring import ScoringModel
from schemas.envelope import derive_id
from schemas.inputs import Activity, CrmOutcome
from schemas.lead import ActivityRecorded, LeadQualified
from tests.support.factories import NOW, enriched

MODEL = load_yaml_model(SHIPPED_RULES / "scoring.yaml", ScoringModel)
LEAD = enriched(answers={"purchase_timeframe_months": 3})  # warm, nurtured
ID = LEAD.lead_id


def activity(n: int, kind: str = "page_view", days_ago: float = 0) -> ActivityRecorded:
    at = NOW - timedelta(days=days_ago)
    return ActivityRecorded(
        event_id=derive_id("ActivityRecorded", f"a{n}"),
        lead_id=ID,
        occurred_at=at,
        emitted_at=at,
        payload=Activity(activity_id=f"a{n}", occurred_at=at, activity_type=kind, lead_id=ID),
    )


def outcome(n: int, kind: str) -> CrmOutcome:
    return CrmOutcome(outcome_id=f"o{n}", lead_id=ID, occurred_at=NOW, outcome=kind)  # type: ignore[arg-type]


def first() -> tuple[LeadState, LeadQualified]:
    state, event = requalify(ID, LeadState(), from_enriched(LEAD), MODEL, NOW)
    assert event is not None
    return state, event


def test_the_first_qualification_is_emitted_with_iteration_1() -> None:
    _, event = first()
    assert (event.payload.iteration, event.payload.decision) == (1, "nurture")
    assert event.payload.trigger == "inquiry"
    assert event.event_id == derive_id("LeadQualified", LEAD.event_id)
    assert (event.source, event.trace_id) == (LEAD.source, LEAD.trace_id)


def test_the_same_input_twice_changes_nothing_and_re_sends_only_the_last_event() -> None:
    state, sent = first()
    again, event = requalify(ID, state, from_enriched(LEAD), MODEL, NOW)
    assert again == state  # no second iteration
    assert event is not None and event.event_id == sent.event_id  # lost in a crash? same id
    state, _ = requalify(ID, state, from_activity(activity(1, "meeting_booked"), MODEL), MODEL, NOW)
    _, older = requalify(ID, state, from_enriched(LEAD), MODEL, NOW)
    assert older is None  # superseded: its event is not sent again


def test_an_activity_re_qualifies_but_emits_only_when_the_outcome_changes() -> None:
    state, _ = first()
    state, event = requalify(ID, state, from_activity(activity(1), MODEL), MODEL, NOW)
    assert event is None and state.iteration == 2 and state.last is not None
    assert state.last.behaviour_score == 1
    state, event = requalify(
        ID, state, from_activity(activity(2, "meeting_booked"), MODEL), MODEL, NOW
    )
    assert event is not None
    assert (event.payload.lead_class, event.payload.decision, event.payload.iteration) == (
        "hot",
        "sales",
        3,
    )
    assert event.payload.trigger == "activity:meeting_booked"


def test_activities_before_the_lead_are_kept_for_its_first_qualification() -> None:
    state, event = requalify(
        ID, LeadState(), from_activity(activity(1, "webinar_attended"), MODEL), MODEL, NOW
    )
    assert event is None and state.iteration == 0
    state, event = requalify(ID, state, from_enriched(LEAD), MODEL, NOW)
    assert event is not None and event.payload.behaviour_score == 6


def test_a_lead_re_qualified_max_times_retires_and_keeps_its_data() -> None:
    state, _ = first()
    events = []
    for n in range(MODEL.retire.max_iterations - 1):
        state, event = requalify(
            ID, state, from_activity(activity(n, days_ago=60), MODEL), MODEL, NOW
        )
        events.append(event)
    assert [e for e in events[:-1] if e is not None] == []
    retired = events[-1]
    assert retired is not None and retired.payload.status == "retired"
    assert retired.payload.iteration == MODEL.retire.max_iterations
    assert (
        state.profile == LEAD.payload and len(state.activities) == MODEL.retire.max_iterations - 1
    )
    # more page views change nothing for a retired lead ...
    state, event = requalify(ID, state, from_activity(activity(99), MODEL), MODEL, NOW)
    assert event is None and state.iteration == MODEL.retire.max_iterations
    # ... but purchase intent brings it back
    state, event = requalify(
        ID, state, from_activity(activity(100, "price_request"), MODEL), MODEL, NOW
    )
    assert event is not None and event.payload.decision == "sales"


def test_a_new_inquiry_re_opens_a_retired_lead_with_a_fresh_count() -> None:
    state = LeadState(iteration=7)
    state, _ = requalify(ID, state, from_enriched(LEAD), MODEL, NOW)
    assert state.retired
    newer = enriched(inquiry_id="form-2", answers={"purchase_timeframe_months": 3})
    state, event = requalify(ID, state, from_enriched(newer), MODEL, NOW)
    assert event is not None and event.payload.iteration == 1
    assert event.payload.decision == "nurture"


def test_sales_returning_a_lead_sends_it_back_to_nurture() -> None:
    hot = enriched(answers={"purchase_timeframe_months": 0})
    state, event = requalify(ID, LeadState(), from_enriched(hot), MODEL, NOW)
    assert event is not None and event.payload.decision == "sales"
    state, event = requalify(ID, state, from_outcome(outcome(1, "contacted")), MODEL, NOW)
    assert event is None and state.iteration == 1
    state, event = requalify(ID, state, from_outcome(outcome(2, "returned")), MODEL, NOW)
    assert event is not None
    assert (event.payload.decision, event.payload.trigger) == ("nurture", "crm:returned")


def test_won_and_lost_close_the_loop() -> None:
    state, _ = first()
    state, event = requalify(ID, state, from_outcome(outcome(1, "won")), MODEL, NOW)
    assert event is None and state.outcome == "won"
    state, event = requalify(
        ID, state, from_activity(activity(1, "price_request"), MODEL), MODEL, NOW
    )
    assert event is None and len(state.activities) == 1


def test_the_state_survives_its_json_round_trip() -> None:
    state, _ = first()
    state, _ = requalify(ID, state, from_activity(activity(1), MODEL), MODEL, NOW)
    assert LeadState.model_validate_json(state.model_dump_json()) == state


def test_a_nurtured_lead_gets_a_durable_due_time_and_the_timer_fires_once() -> None:
    weekly = MODEL.model_copy(
        update={"retire": MODEL.retire.model_copy(update={"requalify_every_days": 7})}
    )
    state, _ = requalify(ID, LeadState(), from_enriched(LEAD), weekly, NOW)
    assert state.due_at == NOW + timedelta(days=7)
    assert due(ID, state.due_at, NOW + timedelta(days=6)) is None
    fired = due(ID, state.due_at, NOW + timedelta(days=7, hours=1))
    assert fired is not None
    assert fired.event_id == due(ID, state.due_at, NOW + timedelta(days=8)).event_id  # type: ignore[union-attr]
    later = NOW + timedelta(days=7, hours=1)
    state, event = requalify(ID, state, from_timer(fired), weekly, later)
    assert event is None and state.iteration == 2 and state.last is not None
    assert state.last.trigger == "interval" and state.due_at == later + timedelta(days=7)
    again, event = requalify(ID, state, from_timer(fired), weekly, later)
    assert again == state and event is None  # fired twice before it was processed


def test_leads_with_sales_get_no_timer() -> None:
    weekly = MODEL.model_copy(
        update={"retire": MODEL.retire.model_copy(update={"requalify_every_days": 7})}
    )
    hot = enriched(answers={"purchase_timeframe_months": 0})
    state, _ = requalify(ID, LeadState(), from_enriched(hot), weekly, NOW)
    assert state.due_at is None and due(ID, state.due_at, NOW + timedelta(days=30)) is None


KINDS = ["page_view", "email_clicked", "webinar_attended", "meeting_booked", "unsubscribed"]


@given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=12),
    repeats=st.lists(st.integers(min_value=0, max_value=11), max_size=6),
)
def test_redelivered_inputs_leave_the_same_state(kinds: list[str], repeats: list[int]) -> None:
    """At-least-once delivery: any input seen again changes neither state nor the count."""
    changes = [from_enriched(LEAD)] + [
        from_activity(activity(n, kind), MODEL) for n, kind in enumerate(kinds)
    ]
    redelivered = [*changes]
    for r in repeats:  # a repeat arrives right after its original
        at = redelivered.index(changes[r % len(changes)])
        redelivered.insert(at + 1, changes[r % len(changes)])

    def final(sequence: list[Change]) -> LeadState:
        state = LeadState()
        for change in sequence:
            state, _ = requalify(ID, state, change, MODEL, NOW)
        return state

    once, twice = final(changes), final(redelivered)
    assert once.iteration == twice.iteration <= len(changes)
    assert once.last == twice.last and once.activities == twice.activities


def test_a_known_persons_new_inquiry_is_emitted_on_its_own_trace_even_if_nothing_changed() -> None:
    state, sent = first()
    newer = enriched(inquiry_id="form-2", answers={"purchase_timeframe_months": 3})
    assert newer.trace_id != LEAD.trace_id
    state, event = requalify(ID, state, from_enriched(newer), MODEL, NOW)
    assert event is not None and event.trace_id == newer.trace_id
    assert event.payload.decision == sent.payload.decision and event.payload.iteration == 2


def test_the_qualification_carries_the_leads_history_for_the_rep() -> None:
    state, _ = first()
    state, _ = requalify(ID, state, from_activity(activity(1, "page_view"), MODEL), MODEL, NOW)
    state, _ = requalify(ID, state, from_activity(activity(2, "page_view"), MODEL), MODEL, NOW)
    fair = enriched(inquiry_id="fair-1", source={"channel": "trade_fair"})
    _, event = requalify(ID, state, from_enriched(fair), MODEL, NOW)
    redelivered, _ = requalify(ID, state, from_enriched(LEAD), MODEL, NOW)
    assert event is not None
    history = event.payload.history
    assert (history.inquiries, history.channels) == (2, [LEAD.source.channel, "trade_fair"])
    assert history.activities == {"page_view": 2} and history.last_activity_at == NOW
    assert history.first_inquiry_at == min(LEAD.payload.received_at, fair.payload.received_at)
    assert redelivered.inquiries == 1  # an input seen before is not counted twice


def test_a_customers_new_inquiry_starts_a_new_cycle_and_goes_to_sales_as_upsell() -> None:
    """Issue 15 point 2: a won lead's new inquiry used to get no qualification at all."""
    state, _ = first()
    state, _ = requalify(ID, state, from_outcome(outcome(1, "won")), MODEL, NOW)
    again = enriched(inquiry_id="form-2", answers={"purchase_timeframe_months": 12})
    state, event = requalify(ID, state, from_enriched(again), MODEL, NOW)
    assert event is not None and event.trace_id == again.trace_id
    q = event.payload
    assert (q.cycle, q.prior_outcome, q.decision, q.iteration) == (2, "won", "sales", 1)
    assert state.outcome is None  # open again: its next outcome closes cycle 2
    late = requalify(ID, state, from_outcome(outcome(2, "lost"), cycle=1), MODEL, NOW)[0]
    assert late.outcome is None  # a late word on cycle 1 does not close cycle 2
    assert requalify(ID, state, from_outcome(outcome(3, "won"), cycle=2), MODEL, NOW)[0].outcome


def test_a_lost_lead_that_comes_back_is_qualified_afresh() -> None:
    state, _ = first()
    state, _ = requalify(ID, state, from_outcome(outcome(1, "returned")), MODEL, NOW)
    state, _ = requalify(ID, state, from_outcome(outcome(2, "lost")), MODEL, NOW)
    back = enriched(inquiry_id="form-3", answers={"purchase_timeframe_months": 0})
    state, event = requalify(ID, state, from_enriched(back), MODEL, NOW)
    assert event is not None
    q = event.payload
    assert (q.cycle, q.prior_outcome, q.iteration) == (2, "lost", 1)
    assert q.decision == "sales"  # hot again, no longer held back as "returned by sales"
    assert not state.returned


def test_a_fired_time_the_lead_did_not_move_past_is_not_due_again() -> None:
    """A closed lead (or a timer event seen before) keeps its old `due_at`: set again,
    it would fire at every scan. A later time, or no timer, stays as it is."""
    fired = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert next_requalification(fired, fired) is None
    assert next_requalification(fired - timedelta(days=1), fired) is None
    later = fired + timedelta(days=30)
    assert next_requalification(later, fired) == later
    assert next_requalification(fired, None) == fired  # not the timer: as the state says
    assert next_requalification(None, fired) is None
