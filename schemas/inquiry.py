"""What channels publish on `leads.inquiries` (and POST to the intake).

Lenient where channels differ (unknown fields are kept), strict where bad data
would hurt (types are not coerced, text lengths are bounded).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.envelope import AwareDatetime, ShortText, Source

LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=10_000)]

INPUT = ConfigDict(frozen=True, strict=True, extra="allow")
"""Channel input: unknown fields are kept for later stages, never dropped."""


class Contact(BaseModel):
    model_config = INPUT

    first_name: ShortText | None = None
    last_name: ShortText | None = None
    email: ShortText | None = None
    phone: ShortText | None = None
    company: ShortText | None = None
    job_title: ShortText | None = None
    postal_code: ShortText | None = None
    city: ShortText | None = None
    country: Annotated[str, StringConstraints(to_upper=True, pattern=r"^[A-Za-z]{2}$")] | None = (
        Field(default=None, description="ISO 3166-1 alpha-2, e.g. DE")
    )
    language: ShortText | None = None
    time_zone: ShortText | None = Field(
        default=None, description="IANA zone, e.g. Europe/Berlin; else derived from country."
    )


class Answers(BaseModel):
    """What the inquirer told us about need, budget and timing (lead definition)."""

    model_config = INPUT

    purchase_timeframe_months: Annotated[int, Field(ge=0, le=120)] | None = None
    order_volume_eur: Annotated[float, Field(ge=0)] | None = None
    industry: ShortText | None = None
    employees: Annotated[int, Field(ge=0)] | None = None
    decision_maker: bool | None = None


class Consent(BaseModel):
    model_config = INPUT

    marketing_email: bool = False
    phone_contact: bool = False


class Inquiry(BaseModel):
    """One raw inquiry from any channel."""

    model_config = INPUT

    inquiry_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None,
        description="Channel-side idempotency key: a retry with the same id creates no new lead.",
    )
    received_at: AwareDatetime | None = None
    source: Source
    contact: Contact
    message: LongText | None = None
    product_interest: list[ShortText] = Field(default_factory=list, max_length=20)
    answers: Answers = Field(default_factory=Answers)
    consent: Consent = Field(default_factory=Consent)
