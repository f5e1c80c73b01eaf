"""The demo's traffic: a repeatable mix of inquiries and a simulated CRM that answers
each routed lead once."""

from __future__ import annotations

import orjson

from pipeline.dev.traffic import demo_inquiries
from schemas.envelope import derive_id


def test_demo_traffic_has_the_promised_mix_and_is_repeatable() -> None:
    messages = demo_inquiries(500, seed=3)
    kinds = {
        kind: sum(m.kind == kind for m in messages) for kind in ("valid", "invalid", "duplicate")
    }
    assert all(count > 0 for count in kinds.values())
    assert kinds["valid"] > 0.8 * len(messages)
    assert [m.value for m in messages] == [m.value for m in demo_inquiries(500, seed=3)]
    channels = {orjson.loads(m.value)["source"]["channel"] for m in messages if m.kind == "valid"}
    assert len(channels) >= 6


def test_the_simulated_crm_answers_after_routing_and_closes_each_lead_once() -> None:
    from collections import Counter

    from pipeline.dev.traffic import crm_outcomes
    from schemas.lead import LeadAssigned
    from tests.support.scenario import scenario

    assigned = [
        e
        for _, e in scenario().events
        if isinstance(e, LeadAssigned) and not e.payload.reassignment
    ]
    many = [
        a.model_copy(update={"lead_id": derive_id("crm", n, a.lead_id)})
        for n in range(30)
        for a in assigned
    ]
    answers = crm_outcomes(many, seed=3)
    assert answers == crm_outcomes(many, seed=3)
    routed = {a.lead_id: a.occurred_at for a in many}
    assert all(o.occurred_at > routed[o.lead_id] for o in answers)
    kinds = Counter(o.outcome for o in answers)
    assert kinds["won"] and kinds["lost"] and kinds["returned"]
    closed = Counter(o.lead_id for o in answers if o.outcome in ("won", "lost", "returned"))
    assert set(closed.values()) == {1}
    assert all(o.amount_eur and o.amount_eur > 0 for o in answers if o.outcome == "won")
