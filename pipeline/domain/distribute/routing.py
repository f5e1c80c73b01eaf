"""Distribute: pick the routing queue, then exactly one rep in it.

Queue choice is a pure first-match over YAML rules. The rep within a queue is
chosen by the queue's strategy over the reps who are available now and below
their caps; the distribute agent keeps each queue's `QueueState` in a table
on the queue-keyed topic, so one partition owns it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from pipeline.domain.rules import RULE
from schemas.envelope import derive_id
from schemas.lead import (
    Assignment,
    ClaimRequested,
    LeadAssigned,
    LeadHandedOff,
    LeadRouted,
    Owner,
    Routed,
)

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Strategy = Literal["round_robin", "weighted", "least_loaded"]


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}, e.g. Europe/Berlin") from exc
    return value


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]


class WorkingHours(BaseModel):
    """When a rep takes leads, in the rep's own time zone."""

    model_config = RULE

    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)
    start: time = time(8, 0)
    end: time = time(18, 0)

    @model_validator(mode="after")
    def _start_before_end(self) -> Self:
        if self.start >= self.end:
            raise ValueError(f"working hours start {self.start} is not before end {self.end}")
        return self

    def covers(self, local: datetime) -> bool:
        return WEEKDAYS[local.weekday()] in self.days and self.start <= local.time() < self.end


class Absence(BaseModel):
    """An out-of-office period, inclusive of both dates (rep's local calendar)."""

    model_config = RULE

    start: date
    end: date

    def covers(self, local: datetime) -> bool:
        return self.start <= local.date() <= self.end


class Rep(BaseModel):
    model_config = RULE

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    email: str = Field(min_length=3)
    weight: int = Field(default=1, ge=1, description="Share under the weighted strategy.")
    max_open: int | None = Field(default=None, ge=1, description="Cap on open leads.")
    max_per_day: int | None = Field(default=None, ge=1, description="Cap on new leads a day.")
    timezone: TimeZoneName = "Europe/Berlin"
    hours: WorkingHours | None = Field(default=None, description="Null: always available.")
    out_of_office: list[Absence] = Field(default_factory=list)

    def available(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.timezone))
        if any(a.covers(local) for a in self.out_of_office):
            return False
        return self.hours is None or self.hours.covers(local)

    def owner(self) -> Owner:
        return Owner(rep_id=self.id, name=self.name, email=self.email)


class QueueState(BaseModel):
    """What a queue remembers between leads: fairness credit and each rep's load."""

    model_config = ConfigDict(frozen=True)

    credit: dict[str, int] = Field(default_factory=dict)
    open: dict[str, int] = Field(default_factory=dict)
    day: str = ""
    today: dict[str, int] = Field(default_factory=dict)
    assigned: int = 0

    def on(self, day: str) -> QueueState:
        """The same state, with the daily counts reset when the day changed."""
        return self if day == self.day else self.model_copy(update={"day": day, "today": {}})

    def release(self, rep_id: str) -> QueueState:
        """A lead of this rep was closed: one open lead fewer (never below zero)."""
        left = max(self.open.get(rep_id, 0) - 1, 0)
        return self.model_copy(update={"open": {**self.open, rep_id: left}})


class RoutingQueue(BaseModel):
    model_config = RULE

    reps: list[Rep] = Field(min_length=1)
    strategy: Strategy = "round_robin"
    sla_minutes: int | None = Field(default=None, ge=1)
    manager: Rep | None = Field(default=None, description="Gets leads nobody can take.")
    overflow: str | None = Field(default=None, description="Queue to try when nobody can.")
    business_hours: WorkingHours | None = Field(
        default=None, description="The SLA clock runs only in these hours; null: always."
    )
    mode: Literal["push", "pull"] = Field(
        default="push",
        description="push: assigned at once; pull: leads wait until a rep claims one.",
    )
    timezone: TimeZoneName = Field(default="Europe/Berlin", description="Of business_hours.")

    def sla_deadline(self, start: datetime, amount: timedelta) -> datetime:
        """`amount` of SLA time after `start`, counted in business hours if the queue has them."""
        if self.business_hours is None:
            return start + amount
        return add_business_time(start, amount, self.business_hours, ZoneInfo(self.timezone))

    @model_validator(mode="after")
    def _unique_reps(self) -> Self:
        ids = [r.id for r in self.reps]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rep(s) listed twice: {', '.join(dupes)}")
        return self

    def eligible(self, state: QueueState, now: datetime) -> list[Rep]:
        """Reps available now and below both caps."""
        return [
            r
            for r in self.reps
            if r.available(now)
            and (r.max_open is None or state.open.get(r.id, 0) < r.max_open)
            and (r.max_per_day is None or state.today.get(r.id, 0) < r.max_per_day)
        ]

    def pick(self, candidates: list[Rep], state: QueueState) -> tuple[Rep, QueueState]:
        """One rep of `candidates` by the queue's strategy, and the state after it.

        Round-robin and weighted use smooth weighted round-robin (each
        candidate earns its weight in credit, the richest is picked and pays
        the total), so shares match weights exactly over any window and
        skipped reps are not punished. Least-loaded takes the fewest open
        leads; ties go to the rep with the most credit (longest waiting).
        """
        weights = {r.id: (r.weight if self.strategy == "weighted" else 1) for r in candidates}
        credit = {r.id: state.credit.get(r.id, 0) + weights[r.id] for r in candidates}
        if self.strategy == "least_loaded":
            rep = min(candidates, key=lambda r: (state.open.get(r.id, 0), -credit[r.id]))
        else:
            rep = max(candidates, key=lambda r: credit[r.id])
        credit[rep.id] -= sum(weights.values())
        after = state.model_copy(
            update={
                "credit": {**state.credit, **credit},
                "open": {**state.open, rep.id: state.open.get(rep.id, 0) + 1},
                "today": {**state.today, rep.id: state.today.get(rep.id, 0) + 1},
                "assigned": state.assigned + 1,
            }
        )
        return rep, after


def add_business_time(
    start: datetime, amount: timedelta, hours: WorkingHours, zone: ZoneInfo
) -> datetime:
    """The moment `amount` of working time has passed after `start` (in UTC)."""
    remaining = amount
    day = start.astimezone(zone).date()
    for _ in range(7 * (amount.days + 2) + 7):  # every week has a working day
        if WEEKDAYS[day.weekday()] in hours.days:
            opens = datetime.combine(day, hours.start, zone).astimezone(UTC)
            closes = datetime.combine(day, hours.end, zone).astimezone(UTC)
            begin = max(start.astimezone(UTC), opens)
            if begin < closes:
                if remaining <= closes - begin:
                    return begin + remaining
                remaining -= closes - begin
        day += timedelta(days=1)
    raise AssertionError("unreachable: working hours have at least one day")


PostalRange = tuple[str, str]


class RouteCondition(BaseModel):
    """All given keys must match (values within one key: any of them)."""

    model_config = RULE

    country: list[str] | None = None
    postal_code: list[str] | None = Field(
        default=None, description='Ranges "10000-19999" or prefixes "8"; compared as text.'
    )
    region: list[str] | None = Field(default=None, description="Names from `regions`.")
    industry: list[str] | None = None
    product_interest: list[str] | None = None
    language: list[str] | None = None
    segment: list[str] | None = None
    lead_class: list[str] | None = None
    min_volume_eur: float | None = Field(default=None, ge=0)
    max_volume_eur: float | None = Field(default=None, ge=0)

    def matches(self, handoff: LeadHandedOff, regions: dict[str, RoutingRegion]) -> bool:
        q = handoff.payload.qualification
        profile = q.profile
        contact = profile.contact
        checks: list[tuple[list[str] | None, list[str]]] = [
            (self.country, [contact.country or ""]),
            (self.product_interest, profile.product_interest),
            (self.industry, [profile.answers.industry or ""]),
            (self.language, [(contact.language or "")[:2]]),
            (self.segment, [profile.company.segment if profile.company else "unknown"]),
            (self.lead_class, [q.lead_class]),
        ]
        if not all(wanted is None or _overlap(wanted, given) for wanted, given in checks):
            return False
        if self.postal_code is not None and not in_postal_ranges(
            contact.postal_code, self.postal_code
        ):
            return False
        if self.region is not None and not any(
            regions[name].contains(contact.country, contact.postal_code) for name in self.region
        ):
            return False
        return self._volume_fits(profile.answers.order_volume_eur)

    def _volume_fits(self, volume: float | None) -> bool:
        if self.min_volume_eur is None and self.max_volume_eur is None:
            return True
        if volume is None:
            return False
        low = self.min_volume_eur if self.min_volume_eur is not None else 0.0
        return low <= volume and (self.max_volume_eur is None or volume <= self.max_volume_eur)


class RoutingRegion(BaseModel):
    """A named territory: countries, optionally narrowed to postal code ranges."""

    model_config = RULE

    country: list[str] = Field(min_length=1)
    postal_code: list[str] | None = None

    def contains(self, country: str | None, postal_code: str | None) -> bool:
        if not _overlap(self.country, [country or ""]):
            return False
        return self.postal_code is None or in_postal_ranges(postal_code, self.postal_code)


def in_postal_ranges(code: str | None, ranges: list[str]) -> bool:
    """A range "10000-19999" holds codes between its ends; a bare "8" is a prefix."""
    if not code:
        return False
    code = code.strip().upper()
    for spec in ranges:
        low, sep, high = spec.partition("-")
        if sep:
            width = len(low.strip())
            if low.strip() <= code[:width] <= high.strip():
                return True
        elif code.startswith(spec.strip().upper()):
            return True
    return False


def _overlap(wanted: list[str], given: list[str]) -> bool:
    return bool({w.casefold() for w in wanted} & {g.casefold() for g in given})


class RoutingRule(BaseModel):
    model_config = RULE

    name: str = Field(min_length=1)
    queue: str
    when: RouteCondition


class RoutingRules(BaseModel):
    model_config = RULE

    version: str | None = Field(
        default=None,
        max_length=80,
        description="A name for this version of the rules (e.g. 2026-12 lower MQL bar); "
        "every decision records it with the rules' content hash.",
    )
    sla_minutes: int = Field(default=5, ge=1, description="Response-time SLA for a rep.")
    sla_reminder_minutes: int | None = Field(
        default=2, ge=1, description="Remind the owner this long before the deadline; null: no."
    )
    default_queue: str
    queues: dict[str, RoutingQueue] = Field(min_length=1)
    regions: dict[str, RoutingRegion] = Field(default_factory=dict)
    accounts: dict[str, str] = Field(
        default_factory=dict, description="Company domain → rep id of the account owner."
    )
    rules: list[RoutingRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_exist(self) -> Self:
        named = [
            self.default_queue,
            *(r.queue for r in self.rules),
            *(q.overflow for q in self.queues.values() if q.overflow),
        ]
        unknown = sorted({q for q in named if q not in self.queues})
        if unknown:
            raise ValueError(
                f"unknown queue(s) {', '.join(unknown)}; defined queues: {', '.join(self.queues)}"
            )
        regions = sorted(
            {g for r in self.rules for g in r.when.region or [] if g not in self.regions}
        )
        if regions:
            raise ValueError(f"unknown region(s) {', '.join(regions)}")
        reps = {r.id for q in self.queues.values() for r in q.reps}
        owners = sorted({o for o in self.accounts.values() if o not in reps})
        if owners:
            raise ValueError(f"account owner(s) {', '.join(owners)} are no rep of any queue")
        return self

    def sla_window(self, queue: str, minute: timedelta) -> timedelta:
        return (self.queues[queue].sla_minutes or self.sla_minutes) * minute

    def queue_of(self, rep_id: str) -> str:
        return next(name for name, q in self.queues.items() if rep_id in {r.id for r in q.reps})


EARLIER_QUEUE = "earlier-queue"


def route_lead(
    handoff: LeadHandedOff,
    rules: RoutingRules,
    earlier_queue: str | None = None,
    won_by: str | None = None,
) -> LeadRouted:
    """Account owner first, then the first matching rule; the default queue catches the rest.

    The account owner of an upsell is the rep who won the customer (`won_by`,
    while still a rep of a queue), else the company's owner in `accounts`. A
    lead routed before in its sales cycle goes back to the queue that decided
    its owner (`earlier_queue`), whatever its new qualification matches:
    decisions are kept per queue and cycle, so another queue would give it a
    second owner.
    """
    company = handoff.payload.qualification.profile.company
    reps = {r.id for q in rules.queues.values() for r in q.reps}
    upsell_owner = won_by if handoff.payload.deal == "upsell" and won_by in reps else None
    owner = upsell_owner or (
        rules.accounts.get((company.domain or "").casefold()) if company else None
    )
    if earlier_queue is not None and earlier_queue in rules.queues:
        queue, rule_name = earlier_queue, EARLIER_QUEUE
    elif owner is not None:
        queue, rule_name = rules.queue_of(owner), "account-owner"
    else:
        rule = next((r for r in rules.rules if r.when.matches(handoff, rules.regions)), None)
        queue, rule_name = (rule.queue, rule.name) if rule else (rules.default_queue, "default")
    routed = Routed(handoff=handoff.payload, queue=queue, rule=rule_name, account_owner=owner)
    return LeadRouted(**handoff.follow("LeadRouted", payload=routed))


def distribute_lead(
    routed: LeadRouted,
    rules: RoutingRules,
    state: QueueState,
    now: datetime,
    minute: timedelta = timedelta(minutes=1),
) -> tuple[LeadAssigned | LeadRouted, QueueState]:
    """Exactly one owner from the routed queue, or a hand-on to its overflow queue.

    The account owner (the routed one: an upsell's rep who won the customer, else
    the company's) takes the lead if available and below caps; otherwise the
    queue's strategy picks among its eligible reps. With nobody eligible the
    lead goes to the queue's manager, else to the overflow queue (re-keyed, so
    that queue's partition decides), else to the strategy ignoring
    availability and caps: a lead never stays without an owner. A lead
    reassigned after two SLA breaches goes to anyone but the owner who missed
    them, whose load is freed.
    """
    name = routed.payload.queue
    queue = rules.queues[name]
    state = state.on(now.date().isoformat())
    previous = routed.payload.reassign_from
    if previous is not None:
        state = state.release(previous.rep_id)

    def assigned(owner: Owner, via: str) -> LeadAssigned:
        assignment = Assignment(
            qualification=routed.payload.handoff.qualification,
            owner=owner,
            queue=name,
            rule=routed.payload.rule,
            assigned_by=via,
            sla_due_at=queue.sla_deadline(now, rules.sla_window(name, minute)),
            reassignment=routed.payload.reassignment,
            contact_permissions=routed.payload.handoff.contact_permissions,
            deal=routed.payload.handoff.deal,
        )
        return LeadAssigned(**routed.follow("LeadAssigned", payload=assignment))

    def others(reps: list[Rep]) -> list[Rep]:
        return [r for r in reps if previous is None or r.id != previous.rep_id]

    candidates = others(queue.eligible(state, now))
    via: str = queue.strategy if previous is None else "reassigned"
    company = routed.payload.handoff.qualification.profile.company
    account = routed.payload.account_owner or (
        rules.accounts.get((company.domain or "").casefold()) if company else None
    )
    if any(r.id == account for r in candidates):
        candidates, via = [r for r in candidates if r.id == account], "account_owner"
    if candidates:
        rep, state = queue.pick(candidates, state)
        return assigned(rep.owner(), via), state
    if queue.manager is not None and others([queue.manager]):
        return assigned(queue.manager.owner(), "manager"), state
    tried = [*routed.payload.tried, name]
    if queue.overflow is not None and queue.overflow not in tried:
        onward = routed.payload.model_copy(update={"queue": queue.overflow, "tried": tried})
        return LeadRouted(**routed.follow("LeadRouted", payload=onward)), state
    rep, state = queue.pick(others(queue.reps) or queue.reps, state)
    return assigned(rep.owner(), "nobody_available"), state


class PullLine(BaseModel):
    """A pull queue's line: positions `head` … `tail - 1` hold its waiting leads,
    oldest first (each a table entry of its own, so the line costs one write per
    lead however long it is)."""

    model_config = ConfigDict(frozen=True)

    head: int = 0
    tail: int = 0


def claim_lead(
    claim: ClaimRequested,
    waiting: list[LeadRouted],
    rules: RoutingRules,
    state: QueueState,
    now: datetime,
    minute: timedelta = timedelta(minutes=1),
) -> tuple[LeadAssigned | str, list[LeadRouted], QueueState]:
    """The oldest waiting lead of a pull queue for the rep who claims it, or why not."""
    queue = rules.queues.get(claim.queue)
    rep = next((r for r in queue.reps if r.id == claim.rep_id), None) if queue else None
    if queue is None or rep is None:
        return f"{claim.rep_id} is no rep of queue {claim.queue}", waiting, state
    state = state.on(now.date().isoformat())
    if rep.max_open is not None and state.open.get(rep.id, 0) >= rep.max_open:
        return f"{rep.id} has {rep.max_open} open leads already", waiting, state
    if not waiting:
        return f"no lead waits in queue {claim.queue}", waiting, state
    routed, rest = waiting[0], waiting[1:]
    assignment = Assignment(
        qualification=routed.payload.handoff.qualification,
        owner=rep.owner(),
        queue=claim.queue,
        rule=routed.payload.rule,
        assigned_by="claimed",
        sla_due_at=queue.sla_deadline(now, rules.sla_window(claim.queue, minute)),
        contact_permissions=routed.payload.handoff.contact_permissions,
        deal=routed.payload.handoff.deal,
    )
    assigned = LeadAssigned(
        **routed.follow(
            "LeadAssigned", payload=assignment, event_id=derive_id("claimed", claim.event_id)
        )
    )
    _, after = queue.pick([rep], state)  # counts the lead as the rep's, like a push
    return assigned, rest, after


def repeat_decision(
    earlier: LeadAssigned | LeadRouted,
    routed: LeadRouted,
    latest: LeadAssigned | None = None,
) -> LeadAssigned | LeadRouted:
    """A lead already decided in this queue keeps its decision: a redelivered
    hand-off gets the very same event; a new one (a known person asked again,
    a re-qualification) the lead's `latest` owner in this queue – after an SLA
    reassignment the new one – on the new inquiry's trace, with the newest
    qualification."""
    if earlier.event_id == derive_id(earlier.event_type, routed.event_id):
        return earlier
    if latest is not None:
        earlier = latest
    handoff = routed.payload.handoff
    if isinstance(earlier, LeadAssigned):
        newest = {
            "qualification": handoff.qualification,
            "contact_permissions": handoff.contact_permissions,
            "deal": handoff.deal,
        }
        payload = earlier.payload.model_copy(update=newest)
        return LeadAssigned(**routed.follow("LeadAssigned", payload=payload))
    onward = earlier.payload.model_copy(update={"handoff": handoff})
    return LeadRouted(**routed.follow("LeadRouted", payload=onward))


def explain_assignment(assigned: LeadAssigned) -> list[str]:
    """How the lead's owner was chosen, in words RevOps reads (`leadflow routing explain`)."""
    a = assigned.payload
    q = a.qualification
    how = {
        "account_owner": "the company's account owner",
        "manager": "the queue's manager (nobody else available)",
        "nobody_available": "the queue's strategy, though nobody was available",
        "reassigned": f"reassignment #{a.reassignment} after missed SLAs",
    }.get(a.assigned_by, f"the queue's {a.assigned_by.replace('_', ' ')} strategy")
    rule = "no rule matched: the default queue" if a.rule == "default" else f"rule {a.rule!r}"
    return [
        f"lead {assigned.lead_id}",
        f"queue {a.queue!r}, chosen by {rule}",
        f"owner {a.owner.name} ({a.owner.rep_id}), chosen by {how}",
        f"respond by {a.sla_due_at.isoformat(timespec='seconds')}",
        f"{q.lead_class} lead, grade {q.grade or '-'}, {q.status}, score {q.score} "
        f"(qualification #{q.iteration}, after {q.trigger})",
    ]


def queue_report(
    rules: RoutingRules, states: dict[str, QueueState], now: datetime
) -> dict[str, list[dict[str, object]]]:
    """Per queue and rep: load, caps and availability now (for `leadflow queues`)."""
    day = now.date().isoformat()
    report: dict[str, list[dict[str, object]]] = {}
    for name, queue in rules.queues.items():
        state = states.get(name, QueueState()).on(day)
        report[name] = [
            {
                "rep_id": r.id,
                "open": state.open.get(r.id, 0),
                "max_open": r.max_open,
                "today": state.today.get(r.id, 0),
                "max_per_day": r.max_per_day,
                "available": r.available(now),
            }
            for r in queue.reps
        ]
    return report


def decision_scope(event: LeadRouted | LeadAssigned) -> str:
    """What a routing decision is kept under: lead and queue, and the sales cycle after
    the first (a returning lead is decided afresh; within a cycle it keeps its owner)."""
    if isinstance(event, LeadRouted):
        queue, cycle = event.payload.queue, event.payload.handoff.qualification.cycle
    else:
        queue, cycle = event.payload.queue, event.payload.qualification.cycle
    return per_cycle(f"{event.lead_id}:{queue}", cycle)


def per_cycle(key: str, cycle: int) -> str:
    """A lead's state key for one sales cycle: the first keeps the key it always had
    (state written before cycles existed still applies), later ones are their own."""
    return key if cycle == 1 else f"{key}:c{cycle}"
