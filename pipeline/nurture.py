"""Nurture: the gate between qualification and sales.

Leads qualified for sales (hot, or SQL) pass at once to the hand-off; every
other lead gets its first touch, the answer to its inquiry.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.lead import Handoff, LeadHandedOff, LeadQualified, Touch, TouchScheduled

RULE = ConfigDict(frozen=True, extra="forbid")


class Fulfillment(BaseModel):
    """Which information package answers an inquiry, and how soon."""

    model_config = RULE

    channel: Literal["email", "call_task", "sms"] = "email"
    default_content: str = Field(min_length=1)
    content_by_product: dict[str, str] = Field(default_factory=dict)
    send_within_minutes: int = Field(default=5, ge=0)

    def content_for(self, products: list[str]) -> str:
        return next(
            (self.content_by_product[p] for p in products if p in self.content_by_product),
            self.default_content,
        )


class NurturePolicy(BaseModel):
    model_config = RULE

    fulfillment: Fulfillment


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
    fulfillment = policy.fulfillment
    contact = qualification.profile.contact
    touch = Touch(
        channel=fulfillment.channel,
        content_id=fulfillment.content_for(qualification.profile.product_interest),
        reason=f"first touch: {qualification.lead_class} {qualification.status}",
        due_at=now + timedelta(minutes=fulfillment.send_within_minutes),
        recipient=contact.email if fulfillment.channel == "email" else contact.phone,
    )
    return TouchScheduled(**event.follow("TouchScheduled", payload=touch))
