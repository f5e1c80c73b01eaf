"""The re-qualification loop (seed 002 §6.4.1): a lead is qualified again after
every new datum – a new or merged inquiry, a tracked activity, sales handing it
back – until it goes to sales or leaves the process. Its data always stays.

Pure: the agent keeps a `LeadState` per lead in a Faust table and calls
`requalify`, which returns the new state and, when the outcome changed, the
`LeadQualified` event to emit.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.domain.once import apply_once
from pipeline.domain.qualify.scoring import ScoringModel, Signals, qualify
from schemas.envelope import AwareDatetime, Source, derive_id
from schemas.inputs import CrmOutcome, Outcome
from schemas.lead import (
    ActivityRecorded,
    LeadEnriched,
    LeadHistory,
    LeadProfile,
    LeadQualified,
    Qualification,
    RequalificationDue,
)

MAX_ACTIVITIES = 500
CLOSED: set[Outcome] = {"won", "lost"}


class TrackedActivity(BaseModel):
    model_config = ConfigDict(frozen=True)

    activity_type: str
    occurred_at: AwareDatetime


class LeadState(BaseModel):
    """Everything qualification remembers about one lead."""

    model_config = ConfigDict(frozen=True)

    profile: LeadProfile | None = None
    source: Source | None = None
    trace_id: uuid.UUID | None = None
    activities: list[TrackedActivity] = Field(default_factory=list)
    iteration: int = 0
    returned: bool = False
    outcome: Outcome | None = None
    last: Qualification | None = None
    due_at: AwareDatetime | None = Field(default=None, description="Next timed re-qualification.")
    seen: list[str] = Field(default_factory=list, description="Inputs already applied.")
    first_inquiry_at: AwareDatetime | None = None
    inquiries: int = 0
    channels: list[str] = Field(default_factory=list)
    emitted_for: str | None = Field(default=None, description="Input of the last event sent.")
    cycle: int = Field(default=1, description="Sales cycle: one more per inquiry after a close.")
    prior_outcome: Literal["won", "lost"] | None = Field(
        default=None, description="How the previous cycle ended."
    )

    @property
    def retired(self) -> bool:
        return self.last is not None and self.last.decision == "retire"


@dataclass(frozen=True)
class Change:
    """One input to the loop: its id (for idempotency), what it changes, what to call it."""

    input_id: str
    apply: Callable[[LeadState], LeadState]
    trigger: str
    reopens: bool = False
    requalifies: bool = True


def from_enriched(event: LeadEnriched) -> Change:
    """A new (or merged) inquiry: the newest profile, and a retired lead comes back.

    On a won or lost lead the inquiry starts its next sales cycle, qualified
    afresh: a customer's goes to sales as upsell, a lost lead's like a new lead's.
    """

    def apply(state: LeadState) -> LeadState:
        received = event.payload.received_at
        first = state.first_inquiry_at
        channel = event.source.channel
        if state.outcome == "won" or state.outcome == "lost":
            state = state.model_copy(
                update={
                    "cycle": state.cycle + 1,
                    "prior_outcome": state.outcome,
                    "outcome": None,
                    "returned": False,
                    "iteration": 0,
                    "last": None,
                }
            )
        return state.model_copy(
            update={
                "profile": event.payload,
                "source": event.source,
                "trace_id": event.trace_id,
                "iteration": 0 if state.retired else state.iteration,
                "first_inquiry_at": received if first is None else min(first, received),
                "inquiries": state.inquiries + 1,
                "channels": state.channels + ([] if channel in state.channels else [channel]),
            }
        )

    return Change(str(event.event_id), apply, "inquiry", reopens=True)


def from_activity(event: ActivityRecorded, model: ScoringModel) -> Change:
    activity = event.payload
    tracked = TrackedActivity(
        activity_type=activity.activity_type, occurred_at=activity.occurred_at
    )

    def apply(state: LeadState) -> LeadState:
        kept = [*state.activities, tracked][-MAX_ACTIVITIES:]
        return state.model_copy(update={"activities": kept})

    intent = activity.activity_type in model.fast_lane.activities
    return Change(str(event.event_id), apply, f"activity:{activity.activity_type}", intent)


def from_outcome(outcome: CrmOutcome, cycle: int = 1) -> Change:
    """Sales' word: a lead handed back is nurtured again; won and lost close the loop.

    `cycle` is the sales cycle the outcome belongs to: a late word on an earlier
    cycle does not close the current one.
    """

    def apply(state: LeadState) -> LeadState:
        if cycle < state.cycle:
            return state
        return state.model_copy(
            update={
                "returned": state.returned or outcome.outcome == "returned",
                "outcome": outcome.outcome if outcome.outcome in CLOSED else state.outcome,
            }
        )

    # contacted / accepted / opportunity: sales is working the lead, nothing to re-qualify
    back = outcome.outcome == "returned"
    return Change(f"crm:{outcome.outcome_id}", apply, f"crm:{outcome.outcome}", requalifies=back)


def from_timer(due: RequalificationDue) -> Change:
    return Change(str(due.event_id), lambda state: state, "interval")


def due(lead_id: uuid.UUID, due_at: datetime | None, now: datetime) -> RequalificationDue | None:
    """The timer's event for a lead whose re-qualification is due (same id if fired twice)."""
    return RequalificationDue.fired(lead_id, due_at, now)


def next_requalification(due_at: datetime | None, fired_at: datetime | None) -> datetime | None:
    """The lead's re-qualification timer after an input: its state's `due_at`, unless
    the input was the timer firing at `fired_at` and the lead did not move past it
    (closed, or the timer's event seen before): that time is not due again, or it
    would fire at every scan."""
    if fired_at is not None and due_at is not None and due_at <= fired_at:
        return None
    return due_at


def requalify(
    lead_id: uuid.UUID,
    state: LeadState,
    change: Change,
    model: ScoringModel,
    now: datetime,
    predict: Callable[[LeadProfile], float | None] | None = None,
) -> tuple[LeadState, LeadQualified | None]:
    """Apply one input and qualify again; emit when the outcome changed or a new
    inquiry came in (so each inquiry, a known person's too, reaches nurture or sales).

    An input seen before changes nothing (at-least-once delivery). A closed
    (won/lost) lead is not qualified again until a new inquiry starts its next
    cycle; a retired one only by a new inquiry or a purchase-intent signal.
    """

    def replay(state: LeadState) -> LeadQualified | None:
        # The input whose event may have been lost in a crash is sent again, same id.
        again = change.input_id == state.emitted_for and state.last is not None
        return _event(lead_id, state, change.input_id, now) if again else None

    def apply(state: LeadState) -> tuple[LeadState, LeadQualified | None]:
        return _requalify(lead_id, change.apply(state), change, model, now, predict)

    return apply_once(state, change.input_id, apply, replay)


def _requalify(
    lead_id: uuid.UUID,
    state: LeadState,
    change: Change,
    model: ScoringModel,
    now: datetime,
    predict: Callable[[LeadProfile], float | None] | None,
) -> tuple[LeadState, LeadQualified | None]:
    if (
        state.profile is None
        or state.outcome is not None
        or (state.retired and not change.reopens)
        or not change.requalifies
    ):
        return state, None
    signals = Signals(
        activities=[(a.activity_type, a.occurred_at) for a in state.activities],
        iteration=state.iteration + 1,
        returned=state.returned,
        win_probability=predict(state.profile) if predict else None,
        trigger=change.trigger,
        customer=state.prior_outcome == "won",
    )
    result = qualify(state.profile, model, signals, now).model_copy(
        update={
            "history": history(state),
            "cycle": state.cycle,
            "prior_outcome": state.prior_outcome,
        }
    )
    previous = state.last
    every = model.retire.requalify_every_days
    next_due = now + timedelta(days=every) if every and result.decision == "nurture" else None
    state = state.model_copy(
        update={"iteration": signals.iteration, "last": result, "due_at": next_due}
    )
    if previous is not None and _same_outcome(previous, result) and change.trigger != "inquiry":
        return state, None  # a new inquiry is always answered with the lead's standing
    state = state.model_copy(update={"emitted_for": change.input_id})
    return state, _event(lead_id, state, change.input_id, now)


def history(state: LeadState) -> LeadHistory:
    kinds = Counter(a.activity_type for a in state.activities)
    return LeadHistory(
        first_inquiry_at=state.first_inquiry_at,
        inquiries=state.inquiries,
        channels=state.channels,
        activities=dict(sorted(kinds.items())),
        last_activity_at=max((a.occurred_at for a in state.activities), default=None),
    )


def _event(lead_id: uuid.UUID, state: LeadState, input_id: str, now: datetime) -> LeadQualified:
    assert state.source is not None and state.trace_id is not None and state.last is not None
    return LeadQualified(
        event_id=derive_id("LeadQualified", input_id),
        lead_id=lead_id,
        source=state.source,
        trace_id=state.trace_id,
        occurred_at=now,
        emitted_at=now,
        payload=state.last,
    )


def _same_outcome(a: Qualification, b: Qualification) -> bool:
    keys = ("lead_class", "status", "decision", "grade")
    return all(getattr(a, k) == getattr(b, k) for k in keys)
