"""A lead's way through nurture (seed 004 §3, 003 "Auto-Recycling", 002 §6.5.1):
the gate, programs entered and left, due steps under the contact policy,
recycling and win-back.

Pure: the nurture agents keep one `NurtureState` per lead in a Faust table and
call `gate`, `on_activity`, `on_outcome` and `run_step` through `once`. Each
input is applied once (its id is remembered), and the event it caused is kept,
so an input redelivered after a crash sends the same event again (same id),
never a second, different one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from pipeline.domain.nurture.policy import (
    Conditions,
    ExitReason,
    NurturePolicy,
    Program,
    Segment,
    TouchChannel,
    Trigger,
    recipient,
)
from pipeline.domain.once import apply_once
from schemas.envelope import AwareDatetime, Source, derive_id
from schemas.lead import (
    ActivityRecorded,
    ContactPermissions,
    Decision,
    Handoff,
    LeadClass,
    LeadHandedOff,
    LeadNurtured,
    LeadProfile,
    LeadQualified,
    NurtureStepDue,
    Nurturing,
    OutcomeRecorded,
    Touch,
    TouchScheduled,
)

V = TypeVar("V", bound=str)
MAX_SENT = 4
MAX_HISTORY = 100
MAX_TOUCH_TIMES = 50
Permission = Literal["email", "call", "sms"]
PERMISSION: dict[TouchChannel, Permission] = {"email": "email", "call_task": "call", "sms": "sms"}
UNSUBSCRIBE_CHANNEL: dict[str, Permission] = {
    "email": "email",
    "call": "call",
    "call_task": "call",
    "phone": "call",
    "sms": "sms",
}
EXIT_ACTIVITIES: dict[str, ExitReason] = {
    "replied": "replied",
    "sms_reply": "replied",
    "meeting_booked": "meeting_booked",
    "unsubscribed": "unsubscribed",
    "do_not_contact": "unsubscribed",
}
RECYCLE: dict[str, Trigger] = {"returned": "returned", "lost": "lost", "churned": "churned"}
OUTPUT: TypeAdapter[LeadHandedOff | LeadNurtured | TouchScheduled] = TypeAdapter(
    Annotated[LeadHandedOff | LeadNurtured | TouchScheduled, Field(discriminator="event_type")]
)
Output = LeadHandedOff | LeadNurtured | TouchScheduled


class Enrollment(BaseModel):
    """One run of a program for one lead."""

    model_config = ConfigDict(frozen=True)

    program: str
    run: int = Field(default=1, description="Recycle and win-back programs can run again.")
    trigger: Trigger
    entered_at: AwareDatetime
    step: int = Field(default=0, description="Index of the next step.")
    due_at: AwareDatetime | None = None
    ended: str | None = Field(default=None, description="completed, or why it left.")

    @property
    def active(self) -> bool:
        return self.ended is None

    @property
    def key(self) -> str:
        """Names the pending step: a timer event for an older step finds nothing."""
        return f"{self.program}:{self.run}:{self.step}"


class HistoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: AwareDatetime
    event: Literal["entered", "touch", "skipped", "postponed", "left", "completed", "result"]
    program: str | None = None
    step: int | None = Field(default=None, description="Step number, from 1.")
    detail: str = ""


class NurtureState(BaseModel):
    """Everything nurture remembers about one lead."""

    model_config = ConfigDict(frozen=True)

    profile: LeadProfile | None = None
    source: Source | None = None
    trace_id: uuid.UUID | None = None
    lead_class: LeadClass | None = None
    decision: Decision | None = None
    channels: list[str] = Field(default_factory=list)
    campaigns: list[str] = Field(default_factory=list)
    activities: list[str] = Field(default_factory=list, description="Types seen, for segments.")
    withdrawn: list[Permission] = Field(default_factory=list)
    do_not_contact: bool = False
    enrollments: list[Enrollment] = Field(default_factory=list)
    touched_at: list[AwareDatetime] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)
    seen: list[str] = Field(default_factory=list)
    sent: dict[str, str] = Field(
        default_factory=dict,
        description="The events the last few inputs caused (JSON), by input id: a crash can "
        "lose the events of every input since the last commit, while the state kept them.",
    )

    @property
    def permissions(self) -> ContactPermissions:
        consent = self.profile.consent if self.profile else None
        granted = {
            "email": bool(consent and consent.marketing_email),
            "call": bool(consent and consent.phone_contact),
            "sms": bool(consent and consent.phone_contact),
        }
        return ContactPermissions(
            **{
                k: v and not self.do_not_contact and k not in self.withdrawn
                for k, v in granted.items()
            },
            do_not_contact=self.do_not_contact,
        )

    @property
    def next_due(self) -> Enrollment | None:
        pending = [e for e in self.enrollments if e.active and e.due_at is not None]
        return min(pending, key=lambda e: e.due_at or e.entered_at, default=None)

    def noted(self, *entries: HistoryEntry) -> NurtureState:
        return self.model_copy(update={"history": [*self.history, *entries][-MAX_HISTORY:]})


def input_id(message: LeadQualified | ActivityRecorded | OutcomeRecorded | NurtureStepDue) -> str:
    if isinstance(message, OutcomeRecorded):
        return f"crm:{message.payload.outcome.outcome_id}"
    return str(message.event_id)


def once(
    state: NurtureState,
    input_id: str,
    step: Callable[[NurtureState], tuple[NurtureState, Output | None]],
) -> tuple[NurtureState, Output | None]:
    """Apply an input once; a repeat of a recent input that caused an event sends it again."""

    def replay(state: NurtureState) -> Output | None:
        sent = state.sent.get(input_id)
        return OUTPUT.validate_json(sent) if sent is not None else None

    def apply(state: NurtureState) -> tuple[NurtureState, Output | None]:
        state, event = step(state)
        if event is None:
            return state, None
        recent = [*state.sent.items(), (input_id, event.model_dump_json())][-MAX_SENT:]
        return state.model_copy(update={"sent": dict(recent)}), event

    return apply_once(state, input_id, apply, replay)


# --- segments and conditions -------------------------------------------------


def in_segment(segment: Segment, state: NurtureState) -> bool:
    products = state.profile.product_interest if state.profile else []
    return bool(
        set(segment.channels) & set(state.channels)
        or set(segment.campaigns) & set(state.campaigns)
        or set(segment.products) & set(products)
        or set(segment.activities) & set(state.activities)
    )


def segments_of(state: NurtureState, policy: NurturePolicy) -> list[str]:
    return [name for name, segment in policy.segments.items() if in_segment(segment, state)]


def missing_fields(profile: LeadProfile | None) -> set[str]:
    gaps = profile.missing if profile else None
    return set(gaps.must + gaps.should + gaps.can) if gaps else set()


def conditions_hold(conditions: Conditions, state: NurtureState, segments: list[str]) -> bool:
    c = conditions
    return (
        (not c.segments or bool(set(c.segments) & set(segments)))
        and (not c.classes or state.lead_class in c.classes)
        and (not c.sources or bool(set(c.sources) & set(state.channels)))
        and (not c.missing or bool(set(c.missing) & missing_fields(state.profile)))
    )


# --- entering and leaving ----------------------------------------------------


def enter(
    state: NurtureState, trigger: Trigger, policy: NurturePolicy, now: datetime, day: timedelta
) -> tuple[NurtureState, list[str]]:
    """Start every program whose entry holds. A nurture program runs once per lead;
    recycle and win-back programs start again at each return, loss or churn."""
    if state.do_not_contact:
        return state, []
    segments = segments_of(state, policy)
    enrollments = list(state.enrollments)
    entered: list[str] = []
    for name, program in policy.programs.items():
        if trigger not in program.entry.triggers or not conditions_hold(
            program.entry, state, segments
        ):
            continue
        earlier = [e for e in enrollments if e.program == name]
        if any(e.active for e in earlier) or (earlier and trigger == "nurture"):
            continue
        due = now + program.steps[0].after_days * day
        enrollments.append(
            Enrollment(
                program=name, run=len(earlier) + 1, trigger=trigger, entered_at=now, due_at=due
            )
        )
        entered.append(name)
    state = state.model_copy(update={"enrollments": enrollments})
    return state.noted(
        *(HistoryEntry(at=now, event="entered", program=p, detail=trigger) for p in entered)
    ), entered


def leave(
    state: NurtureState,
    reasons: Iterable[ExitReason],
    policy: NurturePolicy,
    now: datetime,
    always: bool = False,
) -> tuple[NurtureState, list[str]]:
    """End the programs that list one of `reasons` as an exit (all of them if `always`)."""
    reasons = list(reasons)
    left: list[str] = []
    enrollments = []
    for e in state.enrollments:
        program = policy.programs.get(e.program)
        exits = program.exit_on if program else reasons
        why = next((r for r in reasons if always or r in exits), None)
        if e.active and why is not None:
            e = e.model_copy(update={"ended": why, "due_at": None})
            left.append(e.program)
        enrollments.append(e)
    state = state.model_copy(update={"enrollments": enrollments})
    notes = [HistoryEntry(at=now, event="left", program=p, detail=reasons[0]) for p in left]
    return state.noted(*notes), left


def envelope(
    state: NurtureState, lead_id: uuid.UUID, event_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    """Envelope fields of an event nurture sends on its own (a timer, an activity)."""
    return {
        "event_id": event_id,
        "lead_id": lead_id,
        "source": state.source,
        "trace_id": state.trace_id,
        "occurred_at": now,
        "emitted_at": now,
    }


def nurtured(
    lead_id: uuid.UUID,
    cause: object,
    state: NurtureState,
    policy: NurturePolicy,
    reason: str,
    now: datetime,
    entered: list[str] | None = None,
    left: list[str] | None = None,
) -> LeadNurtured | None:
    """The lead's nurture standing after a change (none for a lead nurture never saw)."""
    if state.source is None or state.trace_id is None:
        return None
    pending = state.next_due
    return LeadNurtured(
        **envelope(state, lead_id, derive_id("LeadNurtured", cause), now),
        payload=Nurturing(
            reason=reason[:200],
            lead_class=state.lead_class,
            segments=segments_of(state, policy),
            programs=[e.program for e in state.enrollments if e.active],
            entered=entered or [],
            left=left or [],
            next_step_at=pending.due_at if pending else None,
            contact_permissions=state.permissions,
        ),
    )


# --- the inputs ----------------------------------------------------------------


def gate(
    event: LeadQualified, state: NurtureState, policy: NurturePolicy, now: datetime, day: timedelta
) -> tuple[NurtureState, LeadHandedOff | LeadNurtured | None]:
    """Sales-ready leads (hot, fast lane, SQL, a customer asking again: upsell) leave
    their programs and go to sales at once; the others enter the programs whose entry
    holds; retired leads leave them."""
    q = event.payload
    channel, campaign = event.source.channel, event.source.campaign
    state = state.model_copy(
        update={
            "profile": q.profile,
            "source": event.source,
            "trace_id": event.trace_id,
            "lead_class": q.lead_class,
            "decision": q.decision,
            "channels": _added(state.channels, channel),
            "campaigns": _added(state.campaigns, campaign) if campaign else state.campaigns,
        }
    )
    if q.decision == "sales":
        hot = q.lead_class == "hot"
        exits: list[ExitReason] = ["became_hot", "handed_to_sales"] if hot else ["handed_to_sales"]
        state, _ = leave(state, exits, policy, now)
        upsell = q.prior_outcome == "won"
        reason = (
            "customer: upsell / cross-sell"
            if upsell
            else "hot lead"
            if hot
            else "sales-qualified (SQL)"
        )
        handoff = Handoff(
            qualification=q,
            reason=reason,
            contact_permissions=state.permissions,
            deal="upsell" if upsell else "new_business",
        )
        return state, LeadHandedOff(**event.follow("LeadHandedOff", payload=handoff))
    if q.decision == "retire":
        state, left = leave(state, ["retired"], policy, now, always=True)
        why = f"retired: {q.reason}" if q.reason else "retired"
        return state, nurtured(event.lead_id, event.event_id, state, policy, why, now, left=left)
    state, entered = enter(state, "nurture", policy, now, day)
    why = f"qualified: {q.lead_class} {q.status}"
    return state, nurtured(event.lead_id, event.event_id, state, policy, why, now, entered)


def on_activity(
    recorded: ActivityRecorded,
    state: NurtureState,
    policy: NurturePolicy,
    now: datetime,
    day: timedelta,
) -> tuple[NurtureState, LeadNurtured | None]:
    """Touch results go into the history; unsubscribes and do-not-contact withdraw
    permission; replies, meetings and unsubscribes end the programs that say so; a new
    segment (e.g. a webinar sign-up) can start a program."""
    a = recorded.payload
    kind = a.activity_type
    state = state.model_copy(update={"activities": _added(state.activities, kind)})
    touch_id = a.details.get("touch_id")
    if touch_id is not None:
        state = state.noted(
            HistoryEntry(at=a.occurred_at, event="result", detail=f"{kind} {touch_id}"[:200])
        )
    if kind == "do_not_contact":
        state = state.model_copy(update={"do_not_contact": True})
    elif kind == "unsubscribed":
        channel = UNSUBSCRIBE_CHANNEL.get(str(a.details.get("channel", "email")), "email")
        state = state.model_copy(update={"withdrawn": _added(state.withdrawn, channel)})
    exit_reason = EXIT_ACTIVITIES.get(kind)
    left: list[str] = []
    if exit_reason is not None:
        state, left = leave(state, [exit_reason], policy, now, always=kind == "do_not_contact")
    entered: list[str] = []
    if state.decision == "nurture" and not left:
        state, entered = enter(state, "nurture", policy, now, day)
    if not (left or entered):
        return state, None
    why = f"activity: {kind}"
    return state, nurtured(
        recorded.lead_id, recorded.event_id, state, policy, why, now, entered, left
    )


def on_outcome(
    recorded: OutcomeRecorded,
    state: NurtureState,
    policy: NurturePolicy,
    now: datetime,
    day: timedelta,
) -> tuple[NurtureState, LeadNurtured | None]:
    """Returned and closed-lost leads are recycled, churned customers won back."""
    outcome = recorded.payload.outcome
    trigger = RECYCLE.get(outcome.outcome)
    if trigger is None:
        return state, None
    state, entered = enter(state, trigger, policy, now, day)
    why = f"crm: {outcome.outcome}" + (f" ({outcome.reason})" if outcome.reason else "")
    cause = f"crm:{outcome.outcome_id}"
    return state, nurtured(outcome.lead_id, cause, state, policy, why, now, entered)


def run_step(
    due: NurtureStepDue, state: NurtureState, policy: NurturePolicy, now: datetime, day: timedelta
) -> tuple[NurtureState, TouchScheduled | None]:
    """The due step of one program: a touch, or skipped (condition, no permission), or
    postponed (frequency cap, quiet hours, weekend). The touch id follows from the
    lead, program, run and step, so a step sent again after a crash is dropped."""
    found = next((e for e in state.enrollments if e.active and e.key == due.step), None)
    if found is None or found.due_at is None or found.due_at > now:
        return state, None  # an older timer event: the step has moved on
    program = policy.programs.get(found.program)
    if program is None or found.step >= len(program.steps):
        return _replace(
            state, found, found.model_copy(update={"ended": "program removed", "due_at": None})
        ), None
    step = program.steps[found.step]
    number = found.step + 1

    def note(event: Literal["touch", "skipped", "postponed"], detail: str) -> NurtureState:
        return state.noted(
            HistoryEntry(at=now, event=event, program=found.program, step=number, detail=detail)
        )

    skipped = None
    if step.when is not None and not conditions_hold(step.when, state, segments_of(state, policy)):
        skipped = "its condition does not hold"
    elif not getattr(state.permissions, PERMISSION[step.channel]):
        skipped = f"no permission to contact by {step.channel}"
    if skipped is not None:
        return _advance(note("skipped", skipped), found, program, now, day), None
    assert state.profile is not None and state.source is not None and state.trace_id is not None
    at = contact_at(state, policy, now, day)
    if at > now:
        postponed = found.model_copy(update={"due_at": at})
        return _replace(note("postponed", f"to {at.isoformat()}"), found, postponed), None
    name = program.label or found.program
    touch = Touch(
        channel=step.channel,
        content_id=step.content,
        reason=f"nurture: {name}, step {number} of {len(program.steps)}"[:200],
        due_at=now,
        recipient=recipient(step.channel, state.profile.contact),
        program=found.program,
        step=number,
    )
    touch_id = derive_id("TouchScheduled", due.lead_id, found.program, found.run, found.step)
    event = TouchScheduled(**envelope(state, due.lead_id, touch_id, now), payload=touch)
    state = note("touch", f"{step.channel} {step.content} {touch_id}")
    state = state.model_copy(update={"touched_at": [*state.touched_at, now][-MAX_TOUCH_TIMES:]})
    return _advance(state, found, program, now, day), event


def contact_at(
    state: NurtureState, policy: NurturePolicy, now: datetime, day: timedelta
) -> datetime:
    """The earliest moment from `now` the frequency cap, quiet hours and weekends allow."""
    cp = policy.contact_policy
    window = cp.per_days * day
    recent = sorted(t for t in state.touched_at if t > now - window)
    at = now if len(recent) < cp.max_touches else recent[-cp.max_touches] + window
    assert state.profile is not None
    return cp.open_at(at, cp.time_zone(state.profile.contact))


def due_step(lead_id: uuid.UUID, when: datetime, step: str, now: datetime) -> NurtureStepDue | None:
    """The timer's event for a due step (same id if fired twice); None if not due yet."""
    if when > now:
        return None
    return NurtureStepDue(
        event_id=derive_id("NurtureStepDue", lead_id, step, when.isoformat()),
        lead_id=lead_id,
        occurred_at=when,
        emitted_at=now,
        due_at=when,
        step=step,
    )


def _advance(
    state: NurtureState, e: Enrollment, program: Program, now: datetime, day: timedelta
) -> NurtureState:
    after = e.step + 1
    if after < len(program.steps):
        moved = e.model_copy(
            update={"step": after, "due_at": now + program.steps[after].after_days * day}
        )
        return _replace(state, e, moved)
    done = HistoryEntry(at=now, event="completed", program=e.program)
    return _replace(
        state.noted(done),
        e,
        e.model_copy(update={"step": after, "due_at": None, "ended": "completed"}),
    )


def _replace(state: NurtureState, old: Enrollment, new: Enrollment) -> NurtureState:
    return state.model_copy(
        update={"enrollments": [new if e == old else e for e in state.enrollments]}
    )


def _added(values: list[V], value: V) -> list[V]:
    return values if value in values else [*values, value]


# --- what `leadflow nurture status` shows --------------------------------------


class ProgramStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    program: str
    run: int
    trigger: str
    entered_at: AwareDatetime
    steps: int
    next_step: int | None = Field(description="Number of the next step, from 1.")
    next_touch: str | None = Field(description="Channel and content of the next step.")
    due_at: AwareDatetime | None
    ended: str | None


class NurtureStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    lead_class: LeadClass | None
    decision: Decision | None
    segments: list[str]
    contact_permissions: ContactPermissions
    programs: list[ProgramStatus]
    history: list[HistoryEntry]


def nurture_status(state: NurtureState, policy: NurturePolicy) -> NurtureStatus:
    programs = []
    for e in state.enrollments:
        steps = policy.programs[e.program].steps if e.program in policy.programs else []
        step = steps[e.step] if e.active and e.step < len(steps) else None
        programs.append(
            ProgramStatus(
                program=e.program,
                run=e.run,
                trigger=e.trigger,
                entered_at=e.entered_at,
                steps=len(steps),
                next_step=e.step + 1 if step else None,
                next_touch=f"{step.channel} {step.content}" if step else None,
                due_at=e.due_at,
                ended=e.ended,
            )
        )
    return NurtureStatus(
        lead_class=state.lead_class,
        decision=state.decision,
        segments=segments_of(state, policy),
        contact_permissions=state.permissions,
        programs=programs,
        history=state.history,
    )


def explain_status(status: NurtureStatus) -> list[str]:
    """The lines `leadflow nurture status` prints."""
    p = status.contact_permissions
    allowed = [name for name in ("email", "call", "sms") if getattr(p, name)]
    lines = [
        f"class {status.lead_class or '-'}, decision {status.decision or '-'}, "
        f"segments: {', '.join(status.segments) or '-'}",
        "may contact by: "
        + ("nobody (do not contact)" if p.do_not_contact else ", ".join(allowed) or "no consent"),
        "programs:" if status.programs else "programs: none",
    ]
    for s in status.programs:
        where = (
            f"step {s.next_step}/{s.steps} {s.next_touch} due {s.due_at:%Y-%m-%d %H:%M:%S} UTC"
            if s.next_step and s.due_at
            else f"ended: {s.ended}"
        )
        lines.append(
            f"  {s.program} (run {s.run}, {s.trigger}, since {s.entered_at:%Y-%m-%d}): {where}"
        )
    lines.append("history:" if status.history else "history: none")
    for h in status.history:
        what = f"{h.program} step {h.step}" if h.step else (h.program or "")
        lines.append(f"  {h.at:%Y-%m-%d %H:%M:%S}  {h.event:<9} {what}  {h.detail}".rstrip())
    return lines
