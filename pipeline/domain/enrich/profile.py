"""The lead fields RevOps can name in rule files, read from what the person told
us first and from enrichment second.

One registry for the scoring criteria and the lead definition (must / should /
can), so a field name means the same in every rule file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from pipeline.domain.rules import RULE
from schemas.lead import Company, LeadProfile, ProfileGaps, Territory

Value = float | str | bool | list[str] | None


def _company(p: LeadProfile) -> Company:
    return p.company or Company()


def _territory(p: LeadProfile) -> Territory:
    return p.territory or Territory()


def _need(p: LeadProfile) -> str | None:
    """Need (BANT): a product and a question about it is specific; either one is general."""
    if p.product_interest and p.message:
        return "specific"
    return "general" if p.product_interest or p.message else None


PROFILE_FIELDS: dict[str, Callable[[LeadProfile], Value]] = {
    "purchase_timeframe_months": lambda p: p.answers.purchase_timeframe_months,
    "order_volume_eur": lambda p: p.answers.order_volume_eur,
    "industry": lambda p: p.answers.industry or _company(p).industry,
    "employees": lambda p: (
        p.answers.employees if p.answers.employees is not None else _company(p).employees
    ),
    "size_band": lambda p: _company(p).size_band,
    "decision_maker": lambda p: p.answers.decision_maker,
    "job_title": lambda p: p.contact.job_title,
    "country": lambda p: p.contact.country or _company(p).country,
    "postal_code": lambda p: p.contact.postal_code or _company(p).postal_code,
    "state": lambda p: _territory(p).state,
    "territory": lambda p: _territory(p).territory,
    "segment": lambda p: p.company.segment if p.company else None,
    "company_name": lambda p: p.contact.company or _company(p).name,
    "email": lambda p: p.contact.email,
    "phone": lambda p: p.contact.phone,
    "product_interest": lambda p: p.product_interest or None,
    "need": _need,
    "customer": lambda p: _company(p).customer if p.company else None,
    "disposable_email": lambda p: _company(p).disposable if p.company else None,
}
"""The names RevOps writes in scoring.yaml and enrichment.yaml."""


def field_value(profile: LeadProfile, name: str) -> Value:
    return PROFILE_FIELDS[name](profile)


def known_field(name: Any) -> str:
    """Validator: a field name from the registry, or an error that lists them."""
    if name not in PROFILE_FIELDS:
        raise ValueError(f"unknown field {name!r}; use one of: {', '.join(PROFILE_FIELDS)}")
    return str(name)


FieldName = Annotated[str, AfterValidator(known_field)]
"""A field name from the registry, checked when the rule file is loaded."""


class LeadDefinition(BaseModel):
    """The customer profile matrix of seed 002 §6.1.3: must, should and can criteria."""

    model_config = RULE

    must: list[FieldName] = Field(default_factory=list)
    should: list[FieldName] = Field(default_factory=list)
    can: list[FieldName] = Field(default_factory=list)

    def gaps(self, profile: LeadProfile) -> ProfileGaps:
        def missing(names: list[str]) -> list[str]:
            return [n for n in names if field_value(profile, n) in (None, "", [])]

        return ProfileGaps(
            must=missing(self.must), should=missing(self.should), can=missing(self.can)
        )
