"""The replay engine (pipeline/domain/replay.py) on histories built in the test:
a history replays to itself, a changed MQL threshold changes exactly the leads
between the old and the new threshold, rep capacity follows the recorded
outcomes, a timer is matched to the recorded one by its due time, and the
comparison names what is missing, extra or different."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.config.rules import load_rules
from pipeline.config.settings import SHIPPED_RULES
from pipeline.domain.distribute.routing import RoutingRules
from pipeline.domain.qualify.scoring import Signals, Thresholds, qualify
from pipeline.domain.replay import (
    REQUALIFY,
    Decision,
    Input,
    Record,
    RuleSet,
    changed,
    decision_of,
    differences,
    replay,
    simulate,
    summaries,
)
from schemas.envelope import EventBase, derive_id
from schemas.inputs import Activity, CrmOutcome
from schemas.lead import (
    ActivityRecorded,
    LeadEnriched,
    NurtureStepDue,
    OutcomeRecorded,
    RecordedOutcome,
    RequalificationDue,
)
from tests.support.factories import enriched

RULES = load_rules(SHIPPED_RULES)
LIVE = RuleSet(RULES.scoring, RULES.nurture, RULES.routing)
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday, in everyone's working hours


def lead(n: int, at: datetime, **answers: Any) -> LeadEnriched:
    """The n-th lead: its own person and inquiry, enriched at `at`."""
    event = enriched(
        inquiry_id=f"form-{n}",
        contact={"first_name": "Eva", "last_name": f"Roth{n}", "email": f"eva{n}@firma{n}.de"},
        answers=answers,
        consent={"marketing_email": True, "phone_contact": True},
    )
    return event.model_copy(update={"occurred_at": at, "emitted_at": at})


def outcome(lead_id: uuid.UUID, kind: str, at: datetime) -> OutcomeRecorded:
    crm = CrmOutcome(outcome_id=f"{lead_id}-{kind}", lead_id=lead_id, occurred_at=at, outcome=kind)  # type: ignore[arg-type]
    return OutcomeRecorded(
        event_id=derive_id("OutcomeRecorded", lead_id, crm.outcome_id),
        lead_id=lead_id,
        occurred_at=at,
        emitted_at=at,
        payload=RecordedOutcome(outcome=crm),
    )


def record_of(inputs: list[Input], emitted: list[EventBase]) -> Record:
    """What the warehouse would hold after a worker emitted `emitted`."""
    record = Record(inputs=inputs)
    for event in emitted:
        record.times[event.event_id] = event.occurred_at
        found = decision_of(event)
        if found is not None:
            record.decisions.append(found)
        if isinstance(event, RequalificationDue | NurtureStepDue):
            kind = event.step if isinstance(event, NurtureStepDue) else REQUALIFY
            fired = (event.due_at, event.emitted_at)
            record.timers.setdefault((event.lead_id, kind), []).append(fired)
    record.end = max([e.emitted_at for e in [*inputs, *emitted]])
    return record


def mixed_history() -> list[Input]:
    hot = lead(1, T0, purchase_timeframe_months=1, decision_maker=True)
    warm = lead(2, T0 + timedelta(minutes=5), purchase_timeframe_months=3, order_volume_eur=300000)
    cold = lead(3, T0 + timedelta(minutes=9), purchase_timeframe_months=24)
    intent = Activity(
        activity_id="a1",
        occurred_at=T0 + timedelta(days=2),
        activity_type="price_request",
        lead_id=cold.lead_id,
    )
    asks = ActivityRecorded(
        event_id=derive_id("activity", 1),
        lead_id=cold.lead_id,
        occurred_at=intent.occurred_at,
        emitted_at=intent.occurred_at,
        payload=intent,
    )
    return [hot, warm, cold, asks, outcome(hot.lead_id, "won", T0 + timedelta(days=3))]


def test_a_history_replays_to_its_own_decisions() -> None:
    inputs = mixed_history()
    emitted = simulate(inputs, LIVE)
    record = record_of(inputs, emitted)
    kinds = {d.kind for d in record.decisions}
    assert {"LeadQualified", "LeadNurtured", "LeadHandedOff", "TouchScheduled"} <= kinds
    assert "LeadAssigned" in kinds
    assert differences(record.decisions, replay(record, LIVE)) == []


def test_a_higher_mql_threshold_changes_exactly_the_leads_between_the_thresholds() -> None:
    inputs: list[Input] = [
        lead(n, T0 + timedelta(minutes=n), **answers)
        for n, answers in enumerate(
            [
                {"purchase_timeframe_months": 24},  # low score
                {"purchase_timeframe_months": 12, "decision_maker": True, "employees": 300},
                {"purchase_timeframe_months": 6, "decision_maker": True, "employees": 1200},
                {
                    "purchase_timeframe_months": 12,
                    "decision_maker": True,
                    "order_volume_eur": 600000,
                },
                {"purchase_timeframe_months": 1},  # hot: sales whatever its score
            ]
        )
    ]
    record = record_of(inputs, simulate(inputs, LIVE))
    stricter = replace(
        LIVE, scoring=LIVE.scoring.model_copy(update={"thresholds": Thresholds(mql=20, sql=30)})
    )
    scores = {
        e.lead_id: qualify(e.payload, LIVE.scoring, Signals(), T0).score
        for e in inputs
        if isinstance(e, LeadEnriched)
    }
    before, after = summaries(replay(record, LIVE)), summaries(replay(record, stricter))
    expected = {lead for lead, s in before.items() if s.status == "mql" and scores[lead] < 20}
    assert expected, f"the history needs leads between the thresholds: {scores}"
    found = changed(before, after)
    assert set(found) == expected
    assert {what for changes in found.values() for what, _, _ in changes} == {"status"}
    assert all(after[lead].status == "lead" for lead in expected), [after[x] for x in expected]


def one_queue(max_open: int) -> RoutingRules:
    rep = {"id": "ria", "name": "Ria", "email": "ria@leadflow.example", "max_open": max_open}
    other = {"id": "tom", "name": "Tom", "email": "tom@leadflow.example", "max_open": max_open}
    return RoutingRules.model_validate(
        {"default_queue": "inbound", "queues": {"inbound": {"reps": [rep, other]}}}
    )


def test_rep_capacity_follows_the_recorded_outcomes() -> None:
    hot = [
        lead(n, T0 + timedelta(hours=n), purchase_timeframe_months=1, decision_maker=True)
        for n in range(3)
    ]
    rules = replace(LIVE, routing=one_queue(max_open=1))
    full: list[Input] = list(hot)
    freed: list[Input] = [
        *hot,
        outcome(hot[0].lead_id, "lost", T0 + timedelta(hours=1, minutes=30)),
    ]

    def third(inputs: list[Input]) -> dict[str, str]:
        decisions = replay(Record(inputs=inputs), rules)
        [assigned] = [
            d for d in decisions if d.kind == "LeadAssigned" and d.lead_id == hot[2].lead_id
        ]
        return assigned.named()

    assert third(full)["assigned_by"] == '"nobody_available"'  # both reps at their cap
    assert third(freed) == {**third(freed), "assigned_by": '"round_robin"', "owner": '"ria"'}


def test_a_replayed_timer_is_the_next_recorded_one_due_about_then() -> None:
    lead_id, due = uuid.uuid4(), T0 + timedelta(days=1)
    first = (due + timedelta(seconds=2), due + timedelta(seconds=30))  # the worker lagged
    second = (due + timedelta(seconds=4), due + timedelta(seconds=40))
    record = Record(timers={(lead_id, REQUALIFY): [first, second]})
    assert record.fired_at(lead_id, REQUALIFY, due) == first  # its id, its time
    assert record.fired_at(lead_id, REQUALIFY, due, after=first[0]) == second
    later = due + timedelta(minutes=5)
    assert record.fired_at(lead_id, REQUALIFY, later) == (later, later)
    assert record.fired_at(uuid.uuid4(), REQUALIFY, due) == (due, due)


def test_differences_name_what_is_missing_extra_or_different() -> None:
    a, b, c = (uuid.uuid4() for _ in range(3))
    lead_id = uuid.uuid4()

    def decided(event_id: uuid.UUID, owner: str) -> Decision:
        return Decision(event_id, lead_id, "LeadAssigned", ('"q"', f'"{owner}"', '"r"', '"x"'))

    found = differences(
        [decided(a, "ria"), decided(b, "tom")], [decided(b, "ria"), decided(c, "ria")]
    )
    assert [(d.event_id, d.before is None, d.after is None) for d in found] == [
        (a, False, True),
        (b, False, False),
        (c, True, False),
    ]
    assert found[1].before is not None and found[1].before["owner"] == '"tom"'
    assert found[1].after is not None and found[1].after["owner"] == '"ria"'
    assert differences([decided(a, "ria")], [decided(a, "ria")]) == []
