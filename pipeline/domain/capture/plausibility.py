"""Plausibility (seed 002 §6.3): normalise contact fields and say what is wrong.

Blocking problems mean nobody could follow the inquiry up (no usable e-mail
or phone, an e-mail that cannot exist): the inquiry is rejected. Everything
else (a phone typo next to a good e-mail, a postal code that does not fit the
city) is a finding that travels with the lead, so sales sees it and nothing
is lost for a typo.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email

from pipeline.domain.contact import COUNTRIES, normalise_phone
from schemas.inquiry import Contact
from schemas.rejected import Reason


@dataclass(frozen=True)
class PostalTable:
    """German postal code ranges per city (normalised name → ranges)."""

    ranges: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> PostalTable:
        """The table from a CSV's text (city,first,last; # comments), as
        `pipeline.config.reference` reads the shipped one."""
        found: dict[str, list[tuple[int, int]]] = {}
        lines = (line for line in text.splitlines() if line and not line.startswith("#"))
        for row in csv.DictReader(lines):
            found.setdefault(city_key(row["city"]), []).append(
                (int(row["first"]), int(row["last"]))
            )
        return cls({city: tuple(r) for city, r in found.items()})

    def fits(self, postal_code: str, city: str) -> bool | None:
        """True / False when the city is in the table, None when it cannot be checked."""
        ranges = self.ranges.get(city_key(city))
        if ranges is None:
            return None
        code = int(postal_code)
        return any(first <= code <= last for first, last in ranges)


def city_key(city: str) -> str:
    return " ".join(city.casefold().replace("ß", "ss").split())


@dataclass(frozen=True)
class Plausibility:
    default_region: str
    postal: PostalTable
    max_age: timedelta = timedelta(days=365)
    """An inquiry dated further back is implausible (a channel's clock at 1970)."""
    max_ahead: timedelta = timedelta(hours=1)
    """An inquiry dated further ahead is implausible (more than clock skew)."""


@dataclass(frozen=True)
class Checked:
    contact: Contact
    blocking: list[Reason]
    findings: list[Reason]


def check_contact(contact: Contact, policy: Plausibility) -> Checked:
    blocking: list[Reason] = []
    findings: list[Reason] = []
    email = _email(contact.email, blocking)
    phone = _phone(contact.phone, contact.country or policy.default_region, findings)
    if email is None and phone is None:
        blocking += [r for r in findings if r.code == "phone_invalid"]
        findings = [r for r in findings if r.code != "phone_invalid"]
        if not any(r.code == "email_invalid" for r in blocking):
            blocking.append(
                Reason(
                    code="no_contact_channel",
                    message="No usable e-mail or phone: nobody could follow up this inquiry.",
                    field="contact",
                )
            )
    country = contact.country
    if country is not None and country not in COUNTRIES:
        findings.append(
            Reason(
                code="country_unknown",
                message=f"{country!r} is not an ISO 3166-1 country code.",
                field="contact.country",
            )
        )
    postal_code = _postal_code(contact, country or policy.default_region, policy, findings)
    normalised = contact.model_copy(
        update={"email": email, "phone": phone, "postal_code": postal_code}
    )
    return Checked(normalised, blocking, findings)


def check_received(
    received_at: datetime | None, now: datetime, policy: Plausibility
) -> tuple[datetime, list[Reason]]:
    """When the inquiry arrived, and a finding if the channel's own date cannot be it.

    An implausible date counts as no date: the time the inquiry reached
    Leadflow stands in, as for a channel that sends none, so response times and
    stage durations in the reports are not measured from 1970. The channel's
    date stays on the lead in the finding, nothing is changed silently.
    """
    if received_at is None:
        return now, []
    if now - policy.max_age <= received_at <= now + policy.max_ahead:
        return received_at, []
    when = "before" if received_at < now else "after"
    finding = Reason(
        code="received_at_implausible",
        message=f"The channel dated the inquiry {received_at.isoformat()}, "
        f"{abs(now - received_at).days} days {when} it arrived; its arrival "
        f"{now.isoformat()} is used instead.",
        field="received_at",
    )
    return now, [finding]


def _email(email: str | None, blocking: list[Reason]) -> str | None:
    if email is None:
        return None
    try:
        return validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        blocking.append(email_invalid(exc))
        return None


def email_invalid(exc: EmailNotValidError) -> Reason:
    return Reason(code="email_invalid", message=str(exc), field="contact.email")


def email_problem(email: str | None) -> Reason | None:
    """Why an address is no e-mail address (capture's own check), None if it is one
    or there is none: the HTTP intake tells a visitor at once (422)."""
    if email is None:
        return None
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        return email_invalid(exc)
    return None


def _phone(phone: str | None, region: str, findings: list[Reason]) -> str | None:
    if phone is None:
        return None
    normalised = normalise_phone(phone, region)
    if normalised is None:
        findings.append(
            Reason(
                code="phone_invalid",
                message=f"Not a valid phone number for region {region}.",
                field="contact.phone",
            )
        )
    return normalised


def _postal_code(
    contact: Contact, country: str, policy: Plausibility, findings: list[Reason]
) -> str | None:
    code = contact.postal_code
    if code is None or country != "DE":
        return code
    code = code.replace(" ", "")
    if not (len(code) == 5 and code.isascii() and code.isdigit()):
        findings.append(
            Reason(
                code="postal_code_invalid",
                message="A German postal code has five digits.",
                field="contact.postal_code",
            )
        )
        return contact.postal_code
    if contact.city is not None and policy.postal.fits(code, contact.city) is False:
        findings.append(
            Reason(
                code="postal_code_city_mismatch",
                message=f"Postal code {code} is not in {contact.city}.",
                field="contact.postal_code",
            )
        )
    return code
