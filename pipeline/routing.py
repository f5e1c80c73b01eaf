"""Distribute: pick the routing queue, then exactly one rep in it.

Queue choice is a pure first-match over YAML rules; the rep within a queue is
round-robin over a pointer that the distribute agent keeps per queue.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.lead import Assignment, LeadAssigned, LeadHandedOff, LeadRouted, Owner, Routed

RULE = ConfigDict(frozen=True, extra="forbid")


class Rep(BaseModel):
    model_config = RULE

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    email: str = Field(min_length=3)


class RoutingQueue(BaseModel):
    model_config = RULE

    reps: list[Rep] = Field(min_length=1)
    sla_minutes: int | None = Field(default=None, ge=1)

    def pick(self, pointer: int) -> Rep:
        """Round-robin: the rep whose turn it is at this pointer."""
        return self.reps[pointer % len(self.reps)]


class Condition(BaseModel):
    """All given keys must match (values within one key: any of them)."""

    model_config = RULE

    country: list[str] | None = None
    product_interest: list[str] | None = None
    segment: list[str] | None = None
    lead_class: list[str] | None = None

    def matches(self, handoff: LeadHandedOff) -> bool:
        q = handoff.payload.qualification
        profile = q.profile
        checks: list[tuple[list[str] | None, list[str]]] = [
            (self.country, [profile.contact.country or ""]),
            (self.product_interest, profile.product_interest),
            (self.segment, [profile.company.segment if profile.company else "unknown"]),
            (self.lead_class, [q.lead_class]),
        ]
        return all(wanted is None or _overlap(wanted, given) for wanted, given in checks)


def _overlap(wanted: list[str], given: list[str]) -> bool:
    return bool({w.casefold() for w in wanted} & {g.casefold() for g in given})


class RoutingRule(BaseModel):
    model_config = RULE

    name: str = Field(min_length=1)
    queue: str
    when: Condition


class RoutingRules(BaseModel):
    model_config = RULE

    sla_minutes: int = Field(default=5, ge=1, description="Response-time SLA for a rep.")
    default_queue: str
    queues: dict[str, RoutingQueue] = Field(min_length=1)
    rules: list[RoutingRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _queues_exist(self) -> Self:
        named = [self.default_queue, *(r.queue for r in self.rules)]
        unknown = sorted({q for q in named if q not in self.queues})
        if unknown:
            raise ValueError(
                f"unknown queue(s) {', '.join(unknown)}; defined queues: {', '.join(self.queues)}"
            )
        return self


def route_lead(handoff: LeadHandedOff, rules: RoutingRules) -> LeadRouted:
    """First matching rule wins; the default queue catches the rest."""
    rule = next((r for r in rules.rules if r.when.matches(handoff)), None)
    queue, rule_name = (rule.queue, rule.name) if rule else (rules.default_queue, "default")
    routed = Routed(handoff=handoff.payload, queue=queue, rule=rule_name)
    return LeadRouted(**handoff.follow("LeadRouted", payload=routed))


def assign_lead(
    routed: LeadRouted, rules: RoutingRules, pointer: int, now: datetime
) -> LeadAssigned:
    queue = rules.queues[routed.payload.queue]
    rep = queue.pick(pointer)
    sla = queue.sla_minutes or rules.sla_minutes
    assignment = Assignment(
        qualification=routed.payload.handoff.qualification,
        owner=Owner(rep_id=rep.id, name=rep.name, email=rep.email),
        queue=routed.payload.queue,
        rule=routed.payload.rule,
        sla_due_at=now + timedelta(minutes=sla),
    )
    return LeadAssigned(**routed.follow("LeadAssigned", payload=assignment))
