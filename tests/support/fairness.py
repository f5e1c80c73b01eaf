"""A weighted team with absences and caps (TEAM) and what the router itself does
with a fixed run of leads for it: the fairness report's figures are checked
against this."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.domain.distribute.routing import QueueState, RoutingRules, distribute_lead, route_lead
from schemas.lead import LeadAssigned
from tests.support.routing import handoff, rep

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
