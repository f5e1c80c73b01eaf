"""What channels publish on `leads.inquiries` (and POST to the intake).

Lenient where channels differ (unknown fields are kept), strict where bad data
would hurt (types are not coerced, text lengths are bounded, numbers are finite).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from schemas.envelope import AwareDatetime, ShortText, Source

LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=10_000)]

INPUT = ConfigDict(frozen=True, strict=True, extra="allow", allow_inf_nan=False)
"""Input from outside: unknown fields are kept for later stages, never dropped;
NaN, Infinity and numbers beyond ±1.8e308 (which the JSON reader turns into
infinity) are refused, since JSON output would turn them into null unnoticed."""
FINITE_NUMBER = "finite_number"
"""The pydantic error type of a non-finite number (reason code invalid_finite_number)."""


def non_finite_at(value: Any) -> tuple[str | int, ...] | None:
    """Where in a JSON value the first non-finite number sits (None: nowhere)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else ()
    items: Iterable[tuple[str | int, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        inner = non_finite_at(item)
        if inner is not None:
            return (key, *inner)
    return None


def _finite(value: Any) -> Any:
    where = non_finite_at(value)
    if where is not None:
        inside = f" (at {'.'.join(map(str, where))})" if where else ""
        raise PydanticCustomError(
            FINITE_NUMBER, f"Input should be a finite number{inside}, not NaN or Infinity"
        )
    return value


FiniteJson = Annotated[Any, AfterValidator(_finite)]
"""Any JSON value, without NaN or Infinity anywhere inside."""


class InputModel(BaseModel):
    """A message from outside; its unknown fields are checked like its typed ones."""

    model_config = INPUT
    __pydantic_extra__: dict[str, FiniteJson] = Field(init=False)


class Contact(InputModel):
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


class Answers(InputModel):
    """What the inquirer told us about need, budget and timing (lead definition)."""

    purchase_timeframe_months: Annotated[int, Field(ge=0, le=120)] | None = None
    order_volume_eur: Annotated[float, Field(ge=0)] | None = None
    industry: ShortText | None = None
    employees: Annotated[int, Field(ge=0)] | None = None
    decision_maker: bool | None = None


class Consent(InputModel):
    marketing_email: bool = False
    phone_contact: bool = False


class Inquiry(InputModel):
    """One raw inquiry from any channel."""

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
