"""The fairness computation: each rep's leads against what the routing rules
entitled them to, given their weight, their absences and their caps."""

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.domain.distribute.routing import QueueState, RoutingRules, distribute_lead, route_lead
from pipeline.reporting.analytics import Handed, expected_leads, fairness_rows
from schemas.lead import LeadAssigned
from tests.unit.test_routing import handoff, rep

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TEAM = RoutingRules.model_validate(
    {
        "default_queue": "team",
        "queues": {
            "team": {
                "strategy": "weighted",
                "manager": rep("mia"),
                "reps": [
                    rep("ada", weight=2, max_per_day=4),
                    rep("ben", out_of_office=[{"start": "2026-11-24", "end": "2026-11-24"}]),
                    rep("cem", max_per_day=1),
                ],
            }
        },
    }
)
"""Ada counts twice but takes at most 4 leads a day, Ben is away on Tuesday,
Cem takes one lead a day; what nobody can take goes to Mia, the manager."""


def configured_distribution() -> list[tuple[datetime, str]]:
    """What the router itself does with 7 leads on Monday and 6 on Tuesday:
    (when, owner) per lead."""
    routed = route_lead(handoff(contact={"email": "a@firma.fr", "country": "FR"}), TEAM)
    times = [MONDAY + timedelta(minutes=n) for n in range(7)]
    times += [MONDAY + timedelta(days=1, minutes=n) for n in range(6)]
    state, out = QueueState(), []
    for at in times:
        result, state = distribute_lead(routed, TEAM, state, at)
        assert isinstance(result, LeadAssigned)
        out.append((at, result.payload.owner.rep_id))
    return out


def test_the_router_spreads_these_leads_unevenly() -> None:
    """The data bites: by weight alone Ada would be at 1.33 and Ben and Cem at 0.67."""
    owners = [owner for _, owner in configured_distribution()]
    assert {o: owners.count(o) for o in set(owners)} == {"ada": 8, "ben": 2, "cem": 2, "mia": 1}


def test_a_distribution_exactly_as_configured_shows_every_rep_at_one() -> None:
    handed = [Handed(at, owner) for at, owner in configured_distribution()]
    rows = {r["rep"]: r for r in fairness_rows(TEAM, {"team": handed})}
    assert {rep: r["load_vs_capacity"] for rep, r in rows.items()} == dict.fromkeys(
        ("ada", "ben", "cem", "mia"), 1.0
    )
    assert {rep: r["expected_leads"] for rep, r in rows.items()} == {
        "ada": 8.0,
        "ben": 2.0,
        "cem": 2.0,
        "mia": 1.0,
    }
    assert all(r["share_of_leads"] == r["share_of_capacity"] for r in rows.values())
    assert {r["queue_gini"] for r in rows.values()} == {0.0}


def test_a_rep_who_got_leads_meant_for_others_stands_out() -> None:
    """Ben took two of Ada's Monday leads: he is above 1, she below, the Gini shows it."""
    handed = [Handed(at, owner) for at, owner in configured_distribution()]
    taken = [h for h in handed if h.owner == "ada" and h.at.day == 23][:2]
    handed = [Handed(h.at, "ben") if h in taken else h for h in handed]
    rows = {r["rep"]: r for r in fairness_rows(TEAM, {"team": handed})}
    assert rows["ben"]["load_vs_capacity"] == 2.0
    assert rows["ada"]["load_vs_capacity"] == 0.75
    assert rows["ada"]["queue_gini"] > 0.1


def test_leads_before_since_count_for_the_caps_only() -> None:
    handed = [Handed(at, owner) for at, owner in configured_distribution()]
    tuesday = MONDAY + timedelta(days=1)
    rows = {r["rep"]: r for r in fairness_rows(TEAM, {"team": handed}, since=tuesday)}
    assert {rep: (r["leads"], r["expected_leads"]) for rep, r in rows.items()} == {
        "ada": (4, 4.0),
        "ben": (0, 0.0),  # away all Tuesday: nothing expected, no ratio
        "cem": (1, 1.0),
        "mia": (1, 1.0),
    }
    assert rows["ben"]["load_vs_capacity"] is None


def test_a_closed_lead_frees_room_under_an_open_lead_cap() -> None:
    """Solo may hold one open lead: while it is open the next goes to the manager;
    once it closed, the one after is Solo's again."""
    queue = RoutingRules.model_validate(
        {
            "default_queue": "q",
            "queues": {"q": {"manager": rep("boss"), "reps": [rep("solo", max_open=1)]}},
        }
    ).queues["q"]
    first = Handed(MONDAY, "solo", closed_at=MONDAY + timedelta(hours=2))
    second = Handed(MONDAY + timedelta(hours=1), "boss")
    third = Handed(MONDAY + timedelta(hours=3), "solo")
    assert expected_leads(queue, [third, second, first]) == pytest.approx(
        {"solo": 2.0, "boss": 1.0}
    )


def test_an_account_owners_lead_is_theirs_and_round_robin_ignores_weights() -> None:
    queue = RoutingRules.model_validate(
        {
            "default_queue": "q",
            "queues": {"q": {"reps": [rep("ann", weight=3), rep("bob")]}},  # round_robin
        }
    ).queues["q"]
    handed = [
        Handed(MONDAY, "ann"),
        Handed(MONDAY + timedelta(minutes=1), "bob"),
        Handed(MONDAY + timedelta(minutes=2), "bob", account_owner=True),
    ]
    assert expected_leads(queue, handed) == pytest.approx({"ann": 1.0, "bob": 2.0})
