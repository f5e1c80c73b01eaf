"""Routing rules and the distribution methods, as pure functions."""

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.domain.distribute.routing import (
    QueueState,
    RoutingRules,
    claim_lead,
    distribute_lead,
    explain_assignment,
    in_postal_ranges,
    queue_report,
    repeat_decision,
    route_lead,
)
from schemas.envelope import derive_id
from schemas.lead import ClaimRequested, LeadAssigned, LeadRouted
from tests.support.routing import MONDAY_NOON, ROUTING, handoff, rep


def queue_of(**overrides: Any) -> tuple[str, str]:
    routed = route_lead(handoff(**overrides), ROUTING)
    return routed.payload.queue, routed.payload.rule


def rules(**queues: dict[str, Any]) -> RoutingRules:
    return RoutingRules.model_validate({"default_queue": next(iter(queues)), "queues": queues})


def assign_many(
    routing: RoutingRules, count: int, now: datetime = MONDAY_NOON
) -> tuple[list[LeadAssigned], QueueState]:
    routed = route_lead(handoff(contact={"email": "a@firma.fr", "country": "FR"}), routing)
    state, out = QueueState(), []
    for _ in range(count):
        result, state = distribute_lead(routed, routing, state, now)
        assert isinstance(result, LeadAssigned)
        out.append(result)
    return out, state


# Rule matching


def test_a_lead_routed_before_goes_back_to_its_earlier_queue() -> None:
    """Whatever its new qualification matches: another queue would give it a second owner."""
    lead = handoff(contact={"email": "a@firma.fr", "country": "FR"})
    first = route_lead(lead, ROUTING).payload.queue
    other = next(q for q in ROUTING.queues if q != first)
    again = route_lead(lead, ROUTING, earlier_queue=other).payload
    assert (again.queue, again.rule) == (other, "earlier-queue")
    gone = route_lead(lead, ROUTING, earlier_queue="a-queue-removed-from-the-rules").payload
    assert gone.queue == first  # rules changed since: routed afresh


def test_first_matching_rule_picks_the_queue_and_is_recorded() -> None:
    assert queue_of(contact={"email": "a@firma.de", "country": "DE"}) == ("dach", "dach-by-country")
    assert queue_of(
        contact={"email": "a@firma.de", "country": "DE"}, product_interest=["analytics"]
    ) == ("enterprise", "analytics-enterprise")


def test_postal_code_region_routes_to_its_team() -> None:
    north = {"email": "a@firma.de", "country": "DE", "postal_code": "20095"}
    south = {"email": "a@firma.de", "country": "DE", "postal_code": "80331"}
    assert queue_of(contact=north) == ("dach-north", "north-by-postal-code")
    assert queue_of(contact=south) == ("dach", "dach-by-country")


def test_expected_volume_routes_large_deals() -> None:
    big = queue_of(contact={"email": "a@firma.fr"}, answers={"order_volume_eur": 250_000.0})
    assert big == ("enterprise", "large-volume")
    small = queue_of(contact={"email": "a@firma.fr"}, answers={"order_volume_eur": 5_000.0})
    assert small == ("international", "default")


def test_industry_and_language_conditions() -> None:
    routing = RoutingRules.model_validate(
        {
            "default_queue": "a",
            "queues": {"a": {"reps": [rep("x")]}, "b": {"reps": [rep("y")]}},
            "rules": [
                {
                    "name": "fr-banks",
                    "queue": "b",
                    "when": {"industry": ["Banking"], "language": ["fr"]},
                }
            ],
        }
    )
    lead = handoff(
        contact={"email": "a@b.fr", "language": "fr-FR"}, answers={"industry": "banking"}
    )
    assert route_lead(lead, routing).payload.rule == "fr-banks"
    other = handoff(contact={"email": "a@b.fr", "language": "de"}, answers={"industry": "banking"})
    assert route_lead(other, routing).payload.rule == "default"


def test_no_matching_rule_means_the_default_queue() -> None:
    assert queue_of(contact={"email": "a@firma.fr", "country": "FR"}) == (
        "international",
        "default",
    )


def test_account_owner_wins_over_rules() -> None:
    lead = handoff(contact={"email": "a@grosskunde.de", "country": "DE"})
    routed = route_lead(lead, ROUTING)
    assert (routed.payload.queue, routed.payload.rule) == ("enterprise", "account-owner")
    result, _ = distribute_lead(routed, ROUTING, QueueState(), MONDAY_NOON)
    assert isinstance(result, LeadAssigned)
    assert (result.payload.owner.rep_id, result.payload.assigned_by) == (
        "max.hoffmann",
        "account_owner",
    )


@pytest.mark.parametrize(
    ("code", "ranges", "inside"),
    [
        ("20095", ["10000-29999"], True),
        ("30159", ["10000-29999"], False),
        ("8010", ["8"], True),
        ("1010", ["70000-99999", "8"], False),
        (None, ["1"], False),
    ],
)
def test_postal_ranges(code: str | None, ranges: list[str], inside: bool) -> None:
    assert in_postal_ranges(code, ranges) is inside


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rules": [{"name": "r", "queue": "nope", "when": {}}]}, "unknown queue"),
        ({"rules": [{"name": "r", "queue": "a", "when": {"region": ["mars"]}}]}, "unknown region"),
        ({"accounts": {"x.de": "ghost"}}, "no rep of any queue"),
        ({"queues": {"a": {"reps": [rep("x", timezone="Mars/Base")]}}}, "unknown time zone"),
        ({"queues": {"a": {"reps": [rep("x"), rep("x")]}}}, "listed twice"),
    ],
)
def test_config_errors(change: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"default_queue": "a", "queues": {"a": {"reps": [rep("x")]}}}
    with pytest.raises(ValueError, match=message):
        RoutingRules.model_validate({**base, **change})


# Distribution within a queue


def test_round_robin_gives_each_rep_a_turn() -> None:
    routing = rules(q={"reps": [rep("a"), rep("b"), rep("c")]})
    owners = [a.payload.owner.rep_id for a in assign_many(routing, 6)[0]]
    assert owners == ["a", "b", "c"] * 2


def test_weighted_shares_within_one_percent_over_10000_leads() -> None:
    routing = rules(
        q={
            "strategy": "weighted",
            "reps": [rep("a", weight=5), rep("b", weight=3), rep("c", weight=2)],
        }
    )
    assigned, _ = assign_many(routing, 10_000)
    shares = Counter(a.payload.owner.rep_id for a in assigned)
    for rep_id, weight in {"a": 5, "b": 3, "c": 2}.items():
        assert abs(shares[rep_id] / 10_000 - weight / 10) <= 0.01


def test_least_loaded_fills_the_emptiest_rep() -> None:
    routing = rules(q={"strategy": "least_loaded", "reps": [rep("a"), rep("b")]})
    routed = route_lead(handoff(contact={"email": "a@firma.fr"}), routing)
    state = QueueState(open={"a": 3, "b": 0})
    owners = []
    for _ in range(5):
        result, state = distribute_lead(routed, routing, state, MONDAY_NOON)
        assert isinstance(result, LeadAssigned)
        owners.append(result.payload.owner.rep_id)
    assert owners[:3] == ["b", "b", "b"]
    assert state.open == {"a": 4, "b": 4}


def test_caps_are_never_exceeded_then_the_manager_takes_over() -> None:
    routing = rules(
        q={
            "manager": rep("boss"),
            "reps": [rep("a", max_open=30), rep("b", max_per_day=20), rep("c", max_open=1000)],
        }
    )
    assigned, state = assign_many(routing, 10_000)
    counts = Counter(a.payload.owner.rep_id for a in assigned)
    assert counts["a"] == 30 and counts["b"] == 20 and counts["c"] == 1000
    assert counts["boss"] == 10_000 - 1050
    assert {a.payload.assigned_by for a in assigned if a.payload.owner.rep_id == "boss"} == {
        "manager"
    }
    assert state.open == {"a": 30, "b": 20, "c": 1000}


def test_daily_cap_resets_the_next_day() -> None:
    routing = rules(q={"reps": [rep("a", max_per_day=1)], "manager": rep("boss")})
    routed = route_lead(handoff(contact={"email": "a@firma.fr"}), routing)
    first, state = distribute_lead(routed, routing, QueueState(), MONDAY_NOON)
    second, state = distribute_lead(routed, routing, state, MONDAY_NOON)
    third, _ = distribute_lead(routed, routing, state, MONDAY_NOON + timedelta(days=1))
    owners = [r.payload.owner.rep_id for r in (first, second, third) if isinstance(r, LeadAssigned)]
    assert owners == ["a", "boss", "a"]


def test_working_hours_are_in_the_reps_time_zone() -> None:
    hours = {"start": "09:00", "end": "17:00"}
    routing = rules(
        q={
            "reps": [
                rep("berlin", hours=hours),
                rep("ny", timezone="America/New_York", hours=hours),
            ]
        }
    )
    # 10:00 UTC on a Monday: 11:00 in Berlin, 05:00 in New York.
    owners = {
        a.payload.owner.rep_id
        for a in assign_many(routing, 4, datetime(2026, 11, 23, 10, tzinfo=UTC))[0]
    }
    assert owners == {"berlin"}
    # 20:00 UTC: 21:00 in Berlin, 15:00 in New York.
    owners = {
        a.payload.owner.rep_id
        for a in assign_many(routing, 4, datetime(2026, 11, 23, 20, tzinfo=UTC))[0]
    }
    assert owners == {"ny"}
    # Saturday: nobody works, so the lead still gets an owner, marked as such.
    saturday, _ = assign_many(routing, 1, datetime(2026, 11, 28, 12, tzinfo=UTC))
    assert saturday[0].payload.assigned_by == "nobody_available"


def test_out_of_office_rep_is_skipped() -> None:
    routing = rules(
        q={
            "reps": [
                rep("a", out_of_office=[{"start": "2026-11-20", "end": "2026-11-24"}]),
                rep("b"),
            ]
        }
    )
    assert {a.payload.owner.rep_id for a in assign_many(routing, 5)[0]} == {"b"}
    later = assign_many(routing, 4, MONDAY_NOON + timedelta(days=2))[0]
    assert {a.payload.owner.rep_id for a in later} == {"a", "b"}


def test_nobody_available_hands_on_to_the_overflow_queue_once() -> None:
    away = [{"start": "2026-11-01", "end": "2026-11-30"}]
    routing = RoutingRules.model_validate(
        {
            "default_queue": "a",
            "queues": {
                "a": {"overflow": "b", "reps": [rep("x", out_of_office=away)]},
                "b": {"overflow": "a", "reps": [rep("y", out_of_office=away)]},
            },
        }
    )
    routed = route_lead(handoff(contact={"email": "a@firma.fr"}), routing)
    onward, _ = distribute_lead(routed, routing, QueueState(), MONDAY_NOON)
    assert isinstance(onward, LeadRouted)
    assert (onward.payload.queue, onward.payload.tried, onward.key()) == ("b", ["a"], b"b")
    last, _ = distribute_lead(onward, routing, QueueState(), MONDAY_NOON)
    assert isinstance(last, LeadAssigned)
    assert (last.payload.owner.rep_id, last.payload.assigned_by) == ("y", "nobody_available")


def test_the_assignment_carries_everything_sales_needs() -> None:
    routed = route_lead(
        handoff(contact={"email": "a@firma.de"}, product_interest=["analytics"]), ROUTING
    )
    assigned, _ = distribute_lead(routed, ROUTING, QueueState(), MONDAY_NOON)
    assert isinstance(assigned, LeadAssigned)
    assert assigned.lead_id == routed.lead_id
    assert assigned.payload.sla_due_at == MONDAY_NOON + timedelta(minutes=15)
    assert assigned.payload.qualification.profile.contact.email == "a@firma.de"
    assert (assigned.payload.queue, assigned.payload.rule) == ("enterprise", "analytics-enterprise")
    assert assigned.schema_version == "1.4"
    permissions = assigned.payload.contact_permissions  # consent travels to the CRM
    assert permissions is not None and not (permissions.email or permissions.call)


def test_queue_report_shows_load_caps_and_availability() -> None:
    away = [{"start": "2026-11-23", "end": "2026-11-23"}]
    routing = rules(q={"reps": [rep("a", max_open=3), rep("b", out_of_office=away)]})
    _, state = assign_many(routing, 2)
    report = queue_report(routing, {"q": state}, MONDAY_NOON)["q"]
    assert report[0] == {
        "rep_id": "a", "open": 2, "max_open": 3, "today": 2, "max_per_day": None, "available": True
    }  # fmt: skip
    assert (report[1]["open"], report[1]["available"]) == (0, False)


def test_a_redelivered_hand_off_repeats_the_decision_and_a_new_one_keeps_the_owner() -> None:
    routed = route_lead(handoff(contact={"email": "a@firma.fr", "country": "FR"}), ROUTING)
    decision, _ = distribute_lead(routed, ROUTING, QueueState(), MONDAY_NOON)
    assert isinstance(decision, LeadAssigned)
    assert repeat_decision(decision, routed) is decision
    again = handoff(inquiry_id="form-2", contact={"email": "a@firma.fr", "country": "FR"})
    later = route_lead(again, ROUTING)
    repeated = repeat_decision(decision, later)
    assert isinstance(repeated, LeadAssigned)
    assert repeated.payload.owner == decision.payload.owner
    assert repeated.payload.sla_due_at == decision.payload.sla_due_at
    assert (repeated.trace_id, repeated.event_id) != (decision.trace_id, decision.event_id)
    assert repeated.trace_id == later.trace_id


def test_after_a_reassignment_a_new_hand_off_goes_to_the_new_owner() -> None:
    routed = route_lead(handoff(contact={"email": "a@firma.fr", "country": "FR"}), ROUTING)
    first, state = distribute_lead(routed, ROUTING, QueueState(), MONDAY_NOON)
    assert isinstance(first, LeadAssigned)
    payload = routed.payload.model_copy(
        update={"reassign_from": first.payload.owner, "reassignment": 1}
    )
    reassigned = LeadRouted(**routed.follow("LeadRouted", payload=payload))
    second, _ = distribute_lead(reassigned, ROUTING, state, MONDAY_NOON)
    assert isinstance(second, LeadAssigned)
    assert second.payload.owner != first.payload.owner
    assert repeat_decision(first, routed, latest=second) is first  # a redelivery: the very event
    again = route_lead(handoff(inquiry_id="form-3", contact={"email": "a@firma.fr"}), ROUTING)
    repeated = repeat_decision(first, again, latest=second)
    assert isinstance(repeated, LeadAssigned)
    assert repeated.payload.owner == second.payload.owner


def test_routing_explain_names_rule_queue_owner_and_how() -> None:
    routed = route_lead(
        handoff(contact={"email": "a@x.de"}, product_interest=["analytics"]), ROUTING
    )
    assigned, _ = distribute_lead(routed, ROUTING, QueueState(), MONDAY_NOON)
    assert isinstance(assigned, LeadAssigned)
    text = "\n".join(explain_assignment(assigned))
    assert "queue 'enterprise', chosen by rule 'analytics-enterprise'" in text
    assert f"({assigned.payload.owner.rep_id}), chosen by the queue's round robin strategy" in text
    assert "respond by 2026-11-23T11:15:00+00:00" in text  # enterprise: 15 business minutes


def claim(rep_id: str, queue: str = "pool") -> ClaimRequested:
    return ClaimRequested(
        event_id=derive_id("claim", rep_id, queue, len(rep_id)),
        occurred_at=MONDAY_NOON,
        emitted_at=MONDAY_NOON,
        queue=queue,
        rep_id=rep_id,
    )


def test_a_pull_queue_gives_the_oldest_waiting_lead_to_the_rep_who_claims_it() -> None:
    pool = rules(pool={"mode": "pull", "reps": [rep("p1", max_open=1), rep("p2")]})
    first = route_lead(handoff(contact={"email": "a@firma.fr", "country": "FR"}), pool)
    second = route_lead(handoff(contact={"email": "b@firma.fr", "country": "FR"}), pool)
    none, waiting, state = claim_lead(claim("p1"), [], pool, QueueState(), MONDAY_NOON)
    assert none == "no lead waits in queue pool"
    got, waiting, state = claim_lead(claim("p1"), [first, second], pool, state, MONDAY_NOON)
    assert isinstance(got, LeadAssigned) and got.lead_id == first.lead_id
    assert (got.payload.owner.rep_id, got.payload.assigned_by) == ("p1", "claimed")
    assert got.payload.contact_permissions == first.payload.handoff.contact_permissions
    assert waiting == [second] and state.open == {"p1": 1}
    capped, waiting, state = claim_lead(claim("p1"), waiting, pool, state, MONDAY_NOON)
    assert capped == "p1 has 1 open leads already" and waiting == [second]
    stranger, _, _ = claim_lead(claim("x"), waiting, pool, state, MONDAY_NOON)
    assert stranger == "x is no rep of queue pool"


def test_an_upsell_goes_to_the_rep_who_won_the_customer() -> None:
    """Issue 15 point 2: a customer's new inquiry goes to its account owner, marked."""
    first = handoff(contact={"email": "a@firma.de", "country": "DE", "postal_code": "20095"})
    q = first.payload.qualification.model_copy(update={"cycle": 2, "prior_outcome": "won"})
    upsell = first.model_copy(
        update={"payload": first.payload.model_copy(update={"qualification": q, "deal": "upsell"})}
    )
    routed = route_lead(upsell, ROUTING, won_by="lena.fischer")
    assert (routed.payload.queue, routed.payload.rule) == ("dach", "account-owner")
    busy = QueueState(open={"lena.fischer": 9})  # least-loaded would pick the other rep
    result, _ = distribute_lead(routed, ROUTING, busy, MONDAY_NOON)
    assert isinstance(result, LeadAssigned)
    a = result.payload
    assert (a.owner.rep_id, a.assigned_by, a.deal) == ("lena.fischer", "account_owner", "upsell")
    assert a.qualification.cycle == 2
    # only an upsell has an account owner by history; a rep who left is no owner
    assert route_lead(first, ROUTING, won_by="lena.fischer").payload.rule != "account-owner"
    assert route_lead(upsell, ROUTING, won_by="gone.rep").payload.account_owner is None
