"""Exclusion policies (seed 002 §6.4.2): competitors, students and pupils,
inquiries from outside the served territory, and custom rules RevOps writes.

An excluded inquiry is not a sales lead, but every inquiry is answered, so
capture turns it into a fulfillment touch that names the rule.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from pipeline.domain.rules import RULE
from schemas.inquiry import Inquiry

EXCLUDED = "excluded: "
"""How the answer to an excluded inquiry's reason begins: it is all that inquiry gets."""


class ExclusionAnswer(BaseModel):
    """The one reply an excluded inquiry gets (`answer:` of an exclusion rule)."""

    model_config = RULE

    channel: Literal["email", "call_task", "sms"] = "email"
    content: str = Field(min_length=1)
    send_within_minutes: int = Field(default=5, ge=0)


class Students(BaseModel):
    model_config = RULE

    job_title_words: list[str] = Field(default_factory=list)
    email_domains: list[str] = Field(default_factory=list)


class Territory(BaseModel):
    model_config = RULE

    countries: list[str] = Field(default_factory=list, description="Empty: served everywhere.")

    @field_validator("countries")
    @classmethod
    def _iso(cls, countries: list[str]) -> list[str]:
        bad = [c for c in countries if not re.fullmatch(r"[A-Z]{2}", c)]
        if bad:
            raise ValueError(f"countries are ISO codes like DE, AT, CH (found: {bad})")
        return countries


class CustomRule(BaseModel):
    model_config = RULE

    name: str = Field(min_length=1)
    field: str = Field(pattern=r"^[a-z_]+(\.[a-z_]+)*$", description="e.g. contact.last_name")
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return pattern


class ExclusionPolicy(BaseModel):
    model_config = RULE

    answer: ExclusionAnswer
    competitor_domains: list[str] = Field(default_factory=list)
    students: Students = Field(default_factory=Students)
    territory: Territory = Field(default_factory=Territory)
    custom: list[CustomRule] = Field(default_factory=list)


def exclusion_for(inquiry: Inquiry, default_region: str, policy: ExclusionPolicy) -> str | None:
    """The reason this inquiry is not a sales lead, or None if it is one."""
    contact = inquiry.contact
    domain = contact.email.rsplit("@", 1)[-1].lower() if contact.email else None
    if domain and _under(domain, policy.competitor_domains):
        return f"competitor ({domain})"
    title_words = set(re.findall(r"\w+", (contact.job_title or "").casefold()))
    if title_words & {w.casefold() for w in policy.students.job_title_words}:
        return "student or pupil (job title)"
    if domain and _under(domain, policy.students.email_domains):
        return "student or pupil (e-mail domain)"
    country = contact.country or default_region
    if policy.territory.countries and country not in policy.territory.countries:
        return f"outside the served territory ({country})"
    for rule in policy.custom:
        value = _field(inquiry.model_dump(), rule.field)
        if isinstance(value, str) and re.search(rule.pattern, value):
            return f"custom rule {rule.name}"
    return None


def _under(domain: str, domains: list[str]) -> bool:
    return any(domain == d or domain.endswith("." + d) for d in domains)


def _field(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data
