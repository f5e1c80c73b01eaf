"""Nurture rules (pipeline/defaults/rules/nurture.yaml): the answer every inquiry gets,
segments, programs per segment, and the contact policy that keeps them from
being pushy (seed 000: "Balance halten").

Fulfillment runs beside qualification (seed 002 §6.4.2): each inquiry, a known
person's too, gets the information package for its product interest. What a
program does with a lead over time is in `pipeline.programs`.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import cache
from importlib.resources import files
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator

from pipeline.domain.rules import RULE
from pipeline.errors import ConfigError
from schemas.envelope import ChannelName, derive_id
from schemas.inputs import ActivityType
from schemas.inquiry import Contact
from schemas.lead import LeadClass, LeadEnriched, Touch, TouchScheduled

TouchChannel = Literal["email", "call_task", "sms"]
Trigger = Literal["nurture", "returned", "lost", "churned"]
"""Why a lead enters a program: it is being nurtured, sales returned it, its deal
was lost (recycling), or it was a customer and left (win-back)."""
NURTURE: tuple[Trigger] = ("nurture",)
ExitReason = Literal[
    "became_hot", "handed_to_sales", "replied", "meeting_booked", "unsubscribed", "retired"
]
EXIT_REASONS: list[ExitReason] = [
    "became_hot",
    "handed_to_sales",
    "replied",
    "meeting_booked",
    "unsubscribed",
    "retired",
]


def recipient(channel: TouchChannel, contact: Contact) -> str | None:
    return contact.email if channel == "email" else contact.phone


class Fulfillment(BaseModel):
    """Which information package answers an inquiry, and how soon."""

    model_config = RULE

    channel: TouchChannel = "email"
    default_content: str = Field(min_length=1)
    content_by_product: dict[str, str] = Field(default_factory=dict)
    send_within_minutes: int = Field(default=5, ge=0)

    def content_for(self, products: list[str]) -> str:
        return next(
            (self.content_by_product[p] for p in products if p in self.content_by_product),
            self.default_content,
        )


class Segment(BaseModel):
    """A group of leads, e.g. webinar sign-ups: any listed channel, campaign,
    product or activity puts a lead in it."""

    model_config = RULE

    label: str | None = None
    channels: list[ChannelName] = Field(default_factory=list)
    campaigns: list[str] = Field(default_factory=list)
    products: list[str] = Field(default_factory=list)
    activities: list[ActivityType] = Field(default_factory=list)

    @model_validator(mode="after")
    def _says_something(self) -> Segment:
        if not (self.channels or self.campaigns or self.products or self.activities):
            raise ValueError(
                "a segment needs at least one of channels, campaigns, products, activities, "
                "e.g. channels: [webinar]"
            )
        return self


class Conditions(BaseModel):
    """Every listed condition must hold; within a list, any value does."""

    model_config = RULE

    segments: list[str] = Field(default_factory=list)
    classes: list[LeadClass] = Field(default_factory=list)
    sources: list[ChannelName] = Field(
        default_factory=list, description="Channels the lead came through."
    )
    missing: list[str] = Field(
        default_factory=list, description="Profile fields still unknown (any of them)."
    )


class Entry(Conditions):
    triggers: list[Trigger] = Field(default_factory=lambda: list(NURTURE), min_length=1)


class Step(BaseModel):
    """One touch of a program, `after_days` after the previous step (or the entry)."""

    model_config = RULE

    channel: TouchChannel = "email"
    content: str = Field(min_length=1)
    after_days: float = Field(ge=0)
    when: Conditions | None = Field(
        default=None, description="Only if these hold when the step is due; else skipped."
    )


class Program(BaseModel):
    model_config = RULE

    label: str | None = None
    entry: Entry = Field(default_factory=Entry)
    steps: list[Step] = Field(min_length=1)
    exit_on: list[ExitReason] = Field(default_factory=lambda: list(EXIT_REASONS))


class QuietHours(BaseModel):
    """No touch between `start` and `end` on the lead's clock (over midnight if start > end)."""

    model_config = RULE

    start: time = time(20, 0)
    end: time = time(8, 0)

    def holds(self, local: datetime) -> bool:
        now = local.time()
        if self.start <= self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end


class ContactPolicy(BaseModel):
    """Not pushy: at most `max_touches` nurture touches per lead in `per_days`
    (all programs together), none in quiet hours or (unless allowed) at weekends."""

    model_config = RULE

    max_touches: int = Field(default=2, ge=1)
    per_days: float = Field(default=7, gt=0)
    quiet_hours: QuietHours | None = Field(default_factory=QuietHours)
    weekends: bool = Field(default=False, description="true: touches on Saturday and Sunday too.")
    default_time_zone: str = "Europe/Berlin"

    @field_validator("default_time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        if zone_named(name) is None:
            raise ValueError(f"unknown time zone {name!r}; write e.g. Europe/Berlin")
        return name

    def time_zone(self, contact: Contact) -> ZoneInfo:
        """The lead's own zone, else its country's (the first listed), else the default."""
        for name in (contact.time_zone, country_zones().get(contact.country or "")):
            zone = zone_named(name) if name else None
            if zone is not None:
                return zone
        return ZoneInfo(self.default_time_zone)

    def open_at(self, when: datetime, zone: ZoneInfo) -> datetime:
        """The first moment from `when` on outside quiet hours and weekends."""
        local = when.astimezone(zone)
        if not self._closed(local):
            return when
        local = local.replace(minute=local.minute - local.minute % 15, second=0, microsecond=0)
        for _ in range(8 * 24 * 4):  # a week and a day in quarter hours is always enough
            local += timedelta(minutes=15)
            if not self._closed(local):
                return local.astimezone(UTC)
        raise ConfigError(
            "nurture.yaml contact_policy: quiet hours and weekends leave no time to contact "
            "anyone; shorten quiet_hours or set weekends: true"
        )

    def _closed(self, local: datetime) -> bool:
        weekend = not self.weekends and local.weekday() >= 5
        return weekend or (self.quiet_hours is not None and self.quiet_hours.holds(local))


def zone_named(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@cache
def country_zones() -> dict[str, str]:
    """ISO country → its first IANA zone, from the tz database's zone.tab (tzdata)."""
    zones: dict[str, str] = {}
    table = files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    for line in table.splitlines():
        if line and not line.startswith("#"):
            country, _, zone = line.split("\t")[:3]
            zones.setdefault(country, zone)
    return zones


class NurturePolicy(BaseModel):
    model_config = RULE

    version: str | None = Field(
        default=None,
        max_length=80,
        description="A name for this version of the rules (e.g. 2026-12 lower MQL bar); "
        "every decision records it with the rules' content hash.",
    )
    fulfillment: Fulfillment
    contact_policy: ContactPolicy = Field(default_factory=ContactPolicy)
    segments: dict[str, Segment] = Field(default_factory=dict)
    programs: dict[str, Program] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _segments_exist(self) -> NurturePolicy:
        for name, program in self.programs.items():
            conditions = [program.entry, *(s.when for s in program.steps if s.when)]
            for used in {seg for c in conditions for seg in c.segments}:
                if used not in self.segments:
                    known = ", ".join(self.segments) or "none defined"
                    raise ValueError(
                        f"program {name!r} names segment {used!r}, which is not under "
                        f"segments: (known: {known})"
                    )
        return self


def fulfill_inquiry(lead: LeadEnriched, policy: NurturePolicy, now: datetime) -> TouchScheduled:
    """The answer to one inquiry; its id follows from the inquiry (its trace), so a
    repeat is dropped, also when an operator splits the inquiry off into a lead of
    its own and it is captured again."""
    fulfillment = policy.fulfillment
    profile = lead.payload
    touch = Touch(
        channel=fulfillment.channel,
        content_id=fulfillment.content_for(profile.product_interest),
        reason=f"fulfillment: answer to inquiry {profile.inquiry_id}"[:200],
        due_at=now + timedelta(minutes=fulfillment.send_within_minutes),
        recipient=recipient(fulfillment.channel, profile.contact),
        purpose="fulfillment",
        response_seconds=max(0.0, round((now - profile.received_at).total_seconds(), 3)),
    )
    envelope = lead.follow("TouchScheduled", payload=touch)
    envelope["event_id"] = derive_id("TouchScheduled", "fulfillment", lead.trace_id)
    return TouchScheduled(**envelope)
