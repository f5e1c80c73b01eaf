"""The SLA clock and what CRM outcomes do to it."""

from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.routing import QueueState, distribute_lead, route_lead
from pipeline.sla import SlaClock, apply_outcome, breach
from schemas.inputs import CrmOutcome
from schemas.lead import LeadAssigned
from tests.unit.test_routing import MONDAY_NOON, ROUTING, handoff


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
    assert not c.breached().due(due)


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


def test_contact_after_a_breach_keeps_the_breach_on_record() -> None:
    c = clock(country="FR").breached()
    after, _ = apply_outcome(c, outcome("accepted", c))
    assert after.status == "breached"


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
