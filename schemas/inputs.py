"""The other two contracts from outside: tracked activities and CRM outcomes."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from schemas.envelope import AwareDatetime, ShortText
from schemas.inquiry import FiniteJson, InputModel

ActivityType = Literal[
    "page_view",
    "email_sent",
    "email_opened",
    "email_clicked",
    "email_bounced",
    "replied",
    "call",
    "sms_reply",
    "whatsapp_reply",
    "form_submitted",
    "webinar_registered",
    "webinar_attended",
    "meeting_booked",
    "price_request",
    "unsubscribed",
    "do_not_contact",
]


class Activity(InputModel):
    """Something a lead did, published on `leads.activity` by tracking tools."""

    activity_id: ShortText
    occurred_at: AwareDatetime
    activity_type: ActivityType
    lead_id: uuid.UUID | None = None
    email: ShortText | None = None
    phone: ShortText | None = None
    details: dict[str, FiniteJson] = Field(
        default_factory=dict,
        description="Free-form. A touch's result names it: touch_id = the TouchScheduled "
        "event_id. unsubscribed names the channel withdrawn: channel = email (default), "
        "call or sms; do_not_contact withdraws every channel.",
    )


Outcome = Literal["contacted", "accepted", "returned", "opportunity", "won", "lost", "churned"]
"""churned: a customer was lost (cancelled), for a win-back program."""


class CrmOutcome(InputModel):
    """What sales did with a lead, published by CRMs on `crm.feedback`."""

    outcome_id: ShortText = Field(description="The CRM's id for this update (idempotency key).")
    lead_id: uuid.UUID
    occurred_at: AwareDatetime
    outcome: Outcome
    rep_id: ShortText | None = None
    reason: ShortText | None = None
    amount_eur: float | None = Field(default=None, ge=0)
    crm_id: ShortText | None = None
