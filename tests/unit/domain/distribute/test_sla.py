"""The SLA clock and what CRM outcomes do to it."""

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.domain.distribute import sla
from pipeline.domain.distribute.routing import (
    QueueState,
    WorkingHours,
    add_business_time,
    distribute_lead,
    route_lead,
)
from pipeline.domain.distribute.sla import (
    SlaClock,
    alarm,
    apply_outcome,
    breach,
    next_alarm,
    record_breach,
)
from pipeline.domain.messages import Position
from schemas.inputs import CrmOutcome
from schemas.lead import (
    LeadAssigned,
    LeadRouted,
    OutcomeWaitExpired,
    SlaBreached,
    SlaReminderDue,
)
from tests.support.routing import MONDAY_NOON, ROUTING, handoff


def clock(**contact: Any) -> SlaClock:
    routed = route_lead(handoff(contact={"email": "a@firma.de", **contact}), ROUTING)
    assigned, _ = distribute_lead(routed, ROUTING, QueueState(), MONDAY_NOON)
    assert isinstance(assigned, LeadAssigned)
    return SlaClock(assigned=assigned)


def outcome(kind: str, c: SlaClock) -> CrmOutcome:
    return CrmOutcome(
        outcome_id=f"crm-{kind}",
        lead_id=c.assigned.lead_id,
        occurred_at=datetime(2026, 11, 23, 11, 1, tzinfo=UTC),
        outcome=kind,  # type: ignore[arg-type]
    )


def test_the_clock_is_due_only_after_the_deadline_and_while_running() -> None:
    c = clock(country="FR")
    due = c.assigned.payload.sla_due_at
    assert due == MONDAY_NOON + timedelta(minutes=5)
    assert not c.due(due - timedelta(seconds=1))
    assert c.due(due)
    first = breach(c, ROUTING)
    assert not c.after_breach(1, due + timedelta(minutes=5)).due(due)
    assert first.payload.breach == 1


def test_the_owner_is_reminded_shortly_before_the_deadline_once() -> None:
    c = clock(country="FR")
    due = c.assigned.payload.sla_due_at
    minute = timedelta(minutes=1)
    assert alarm(c, due - timedelta(minutes=3), ROUTING, minute) is None
    reminder = alarm(c, due - timedelta(minutes=2), ROUTING, minute)
    assert isinstance(reminder, SlaReminderDue)
    assert reminder.payload.owner == c.assigned.payload.owner
    again = alarm(c, due - timedelta(minutes=1), ROUTING, minute)
    assert again is not None and again.event_id == reminder.event_id  # the timer may repeat
    assert isinstance(alarm(c, due, ROUTING, minute), SlaBreached)
    reminded = c.reminded(reminder.payload.sla_due_at)
    assert next_alarm(reminded, ROUTING, minute) == due  # the next alarm is the deadline
    assert alarm(reminded, due - timedelta(minutes=1), ROUTING, minute) is None
    assert isinstance(alarm(reminded, due, ROUTING, minute), SlaBreached)
    assert c.reminded(due - timedelta(hours=1)) == c  # a reminder of another deadline
    later = reminded.after_breach(1, due + timedelta(minutes=5))
    assert next_alarm(later, ROUTING, minute) == due + timedelta(minutes=5)  # no reminder after


def test_the_timer_index_holds_the_first_moment_the_clock_asks_for_an_alarm() -> None:
    """The SLA timer reads a clock only from `next_alarm` on: nothing may be due before it."""
    minute = timedelta(minutes=1)
    running = clock(country="FR")
    due = running.assigned.payload.sla_due_at
    breached = running.after_breach(1, due + timedelta(minutes=5))
    for c in (running, breached):
        at = next_alarm(c, ROUTING, minute)
        assert at is not None
        assert alarm(c, at - timedelta(seconds=1), ROUTING, minute) is None
        assert alarm(c, at, ROUTING, minute) is not None
    assert next_alarm(running, ROUTING, minute) == due - 2 * minute  # the reminder
    assert next_alarm(breached, ROUTING, minute) == due + timedelta(minutes=5)
    contacted, _ = apply_outcome(running, outcome("contacted", running))
    assert next_alarm(contacted, ROUTING, minute) is None
    assert next_alarm(breached.after_breach(2, due), ROUTING, minute) is None  # reassigned


def test_a_second_breach_reassigns_to_another_rep_and_frees_the_first() -> None:
    c = clock(country="FR")  # international: round robin over two reps
    minute = timedelta(minutes=1)
    first = breach(c, ROUTING)
    c, none = record_breach(c, first, ROUTING, minute)
    assert none is None and c.breaches == 1
    assert c.due_at == c.assigned.payload.sla_due_at + timedelta(minutes=5)  # a second window
    assert record_breach(c, first, ROUTING, minute) == (c, None)  # the repeat changes nothing
    second = alarm(c, c.due_at, ROUTING, minute)
    assert isinstance(second, SlaBreached) and second.payload.breach == 2
    assert second.event_id != first.event_id
    c, routed = record_breach(c, second, ROUTING, minute)
    assert isinstance(routed, LeadRouted) and not c.running
    assert routed.payload.reassign_from == c.assigned.payload.owner
    before = c.assigned.payload.owner.rep_id
    state = QueueState(open={before: 1})
    again, state = distribute_lead(routed, ROUTING, state, MONDAY_NOON)
    assert isinstance(again, LeadAssigned)
    assert again.payload.owner.rep_id != before
    assert (again.payload.assigned_by, again.payload.reassignment) == ("reassigned", 1)
    assert state.open[before] == 0


def test_business_hours_stop_the_sla_clock_overnight_and_at_weekends() -> None:
    hours = WorkingHours(start="08:00", end="18:00")  # type: ignore[arg-type]
    berlin = ZoneInfo("Europe/Berlin")
    friday_1755 = datetime(2026, 11, 27, 16, 55, tzinfo=UTC)  # 17:55 in Berlin
    due = add_business_time(friday_1755, timedelta(minutes=15), hours, berlin)
    assert due.astimezone(berlin) == datetime(2026, 11, 30, 8, 10, tzinfo=berlin)  # Monday
    sunday = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert add_business_time(sunday, timedelta(0), hours, berlin).astimezone(berlin).hour == 8
    long = add_business_time(MONDAY_NOON, timedelta(hours=25), hours, berlin)
    assert long.astimezone(berlin) == datetime(2026, 11, 25, 17, 0, tzinfo=berlin)  # 6 + 10 + 9 h


def test_a_breach_escalates_to_the_queue_manager_with_a_stable_id() -> None:
    c = clock(country="DE", postal_code="80331")  # dach: no manager
    event = breach(c, ROUTING)
    assert event.payload.escalate_to == "queue:dach"
    assert event.payload.owner == c.assigned.payload.owner
    assert breach(c, ROUTING).event_id == event.event_id
    routed = route_lead(
        handoff(contact={"email": "a@x.de"}, product_interest=["analytics"]), ROUTING
    )
    assigned, _ = distribute_lead(routed, ROUTING, QueueState(), MONDAY_NOON)
    assert isinstance(assigned, LeadAssigned)
    assert breach(SlaClock(assigned=assigned), ROUTING).payload.escalate_to == "clara.klein"


def test_contact_stops_the_clock_without_freeing_load() -> None:
    c = clock(country="FR")
    after, released = apply_outcome(c, outcome("contacted", c))
    assert (after.status, released) == ("contacted", None)
    assert not after.due(c.assigned.payload.sla_due_at + timedelta(hours=1))


def test_contact_after_a_breach_keeps_the_breach_on_record_and_stops_the_clock() -> None:
    c = clock(country="FR")
    c, _ = record_breach(c, breach(c, ROUTING), ROUTING, timedelta(minutes=1))
    after, _ = apply_outcome(c, outcome("accepted", c))
    assert after.status == "breached" and not after.due(c.due_at + timedelta(days=1))


def test_a_closing_outcome_frees_the_owners_load_once() -> None:
    c = clock(country="FR")
    closed, released = apply_outcome(c, outcome("won", c))
    assert closed.status == "closed" and released is not None
    assert released.key() == c.assigned.payload.queue.encode()
    assert released.payload.owner == c.assigned.payload.owner
    again, none = apply_outcome(closed, outcome("lost", c))
    assert (again, none) == (closed, None)


def test_releasing_load_never_goes_below_zero() -> None:
    state = QueueState(open={"a": 1})
    assert state.release("a").release("a").open == {"a": 0}


def test_an_outcome_under_another_leads_key_is_misrouted() -> None:
    c = clock()
    won = outcome("won", c)
    assert not sla.misrouted(str(c.assigned.lead_id).encode(), won)
    assert sla.misrouted(str(uuid.uuid4()).encode(), won)
    assert sla.misrouted(None, won)


def test_an_applied_outcome_is_recorded_with_its_owner_cycle_and_crm_time() -> None:
    c = clock()
    won = outcome("won", c)
    closed, _ = apply_outcome(c, won)
    event = sla.recorded(won, 1, c)
    assert (event.lead_id, event.occurred_at, event.payload.outcome) == (
        won.lead_id,
        won.occurred_at,
        won,
    )
    assert (event.payload.owner, event.payload.cycle) == (c.assigned.payload.owner, 1)
    assert (closed.closed, closed.outcome) == (True, "won")
    unassigned = sla.recorded(won, 2)  # a lead known but never handed to sales
    assert (unassigned.payload.owner, unassigned.payload.cycle) == (None, 2)
    assert unassigned.event_id == event.event_id  # the same outcome, the same id


def test_a_held_outcome_is_rejected_as_unknown_lead_once_its_wait_is_over() -> None:
    now = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    lead = uuid.uuid4()
    raw = CrmOutcome(outcome_id="x", lead_id=lead, occurred_at=now, outcome="won")
    at = Position("crm.feedback", 3, 17)
    early = sla.hold(raw.model_dump_json().encode(), at, now, timedelta(minutes=15))
    later = sla.hold(
        raw.model_dump_json().encode(), at, now + timedelta(minutes=5), timedelta(minutes=15)
    )
    assert OutcomeWaitExpired.fired(lead, early.until, now) is None
    fired = OutcomeWaitExpired.fired(lead, early.until, early.until)
    assert fired is not None and fired == OutcomeWaitExpired.fired(lead, early.until, early.until)
    known = early.model_copy(update={"recorded": True})  # its lead turned up: no rejection
    kept, rejected = sla.expire([early, later, known], fired.due_at, "crm-feedback")
    assert kept == [later]
    [rejection] = rejected
    assert [r.code for r in rejection.payload.reasons] == ["unknown_lead"]
    assert (rejection.payload.topic, rejection.payload.partition, rejection.payload.offset) == (
        "crm.feedback",
        3,
        17,
    )
    assert base64.b64decode(rejection.payload.original_b64) == raw.model_dump_json().encode()


def test_an_outcome_held_before_the_bounded_wait_is_applied_or_dropped_never_rejected() -> None:
    now = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    old = CrmOutcome(outcome_id="y", lead_id=uuid.uuid4(), occurred_at=now, outcome="won")
    entry = sla.held(old.model_dump_json(), now, timedelta(minutes=15))  # the old format
    assert CrmOutcome.model_validate_json(entry.raw) == old
    kept, rejected = sla.expire([entry], entry.until, "crm-feedback")
    assert (kept, rejected) == ([], [])
    new = sla.hold(b"{}", Position("crm.feedback", 1, 2), now, timedelta(minutes=15))
    assert sla.held(new.model_dump(mode="json"), now, timedelta(minutes=15)) == new
