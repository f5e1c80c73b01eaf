"""Nurture: every inquiry is answered, and the gate between qualification and sales.

Fulfillment runs beside qualification (seed 002 §6.4.2): each inquiry, a known
person's too, gets the information package for its product interest. The
gate then passes leads qualified for sales (hot, or SQL) at once to the
hand-off; every other lead gets a first nurture touch a while later, so the
answer and the follow-up do not arrive together.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.inquiry import Contact
from schemas.lead import (
    Handoff,
    LeadEnriched,
    LeadHandedOff,
    LeadQualified,
    Touch,
    TouchScheduled,
)

RULE = ConfigDict(frozen=True, extra="forbid")
TouchChannel = Literal["email", "call_task", "sms"]


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


class FirstTouch(BaseModel):
    """The first nurture step of a lead that is not ready for sales."""

    model_config = RULE

    channel: TouchChannel = "email"
    content_by_class: dict[Literal["hot", "warm", "cold"], str] = Field(min_length=1)
    default_content: str = Field(min_length=1)
    after_hours: float = Field(default=24, ge=0)


class NurturePolicy(BaseModel):
    model_config = RULE

    fulfillment: Fulfillment
    first_touch: FirstTouch


def fulfill_inquiry(lead: LeadEnriched, policy: NurturePolicy, now: datetime) -> TouchScheduled:
    """The answer to one inquiry; its id follows from the inquiry, so a repeat is dropped."""
    fulfillment = policy.fulfillment
    profile = lead.payload
    touch = Touch(
        channel=fulfillment.channel,
        content_id=fulfillment.content_for(profile.product_interest),
        reason=f"fulfillment: answer to inquiry {profile.inquiry_id}"[:200],
        due_at=now + timedelta(minutes=fulfillment.send_within_minutes),
        recipient=recipient(fulfillment.channel, profile.contact),
        purpose="fulfillment",
    )
    return TouchScheduled(**lead.follow("TouchScheduled", payload=touch))


def nurture_gate(
    event: LeadQualified, policy: NurturePolicy, now: datetime
) -> LeadHandedOff | TouchScheduled:
    qualification = event.payload
    if qualification.decision == "sales":
        reason = "hot lead" if qualification.lead_class == "hot" else "sales-qualified (SQL)"
        return LeadHandedOff(
            **event.follow(
                "LeadHandedOff", payload=Handoff(qualification=qualification, reason=reason)
            )
        )
    first = policy.first_touch
    touch = Touch(
        channel=first.channel,
        content_id=first.content_by_class.get(qualification.lead_class, first.default_content),
        reason=f"first touch: {qualification.lead_class} {qualification.status}",
        due_at=now + timedelta(hours=first.after_hours),
        recipient=recipient(first.channel, qualification.profile.contact),
    )
    return TouchScheduled(**event.follow("TouchScheduled", payload=touch))
