"""The fairness computation: each rep's leads against what the routing rules
entitled them to, given their weight, their absences and their caps."""

from datetime import timedelta

import pytest

from pipeline.domain.distribute.routing import RoutingRules
from pipeline.reporting.analytics import Handed, expected_leads, fairness_rows
from tests.support.fairness import MONDAY, TEAM, configured_distribution
from tests.support.routing import rep


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
