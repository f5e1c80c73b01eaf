"""Enrich: fill the lead's company profile from reference data before asking anyone."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from schemas.lead import Company, LeadCaptured, LeadEnriched, LeadProfile


@dataclass(frozen=True)
class ReferenceData:
    free_mail_domains: frozenset[str]

    @classmethod
    def shipped(cls) -> ReferenceData:
        text = resources.files("pipeline").joinpath("reference/free_mail_domains.txt").read_text()
        domains = {line.strip().lower() for line in text.splitlines()}
        return cls(free_mail_domains=frozenset(d for d in domains if d and not d.startswith("#")))


def company_profile(profile: LeadProfile, reference: ReferenceData) -> Company:
    email = profile.contact.email
    domain = email.rsplit("@", 1)[1].lower() if email else None
    if domain in reference.free_mail_domains:
        return Company(domain=None, name=profile.contact.company, free_mail=True, segment="b2c")
    if domain is not None:
        return Company(domain=domain, name=profile.contact.company, free_mail=False, segment="b2b")
    if profile.contact.company:
        return Company(domain=None, name=profile.contact.company, free_mail=False, segment="b2b")
    return Company(domain=None, name=None, free_mail=False, segment="unknown")


def enrich_lead(event: LeadCaptured, reference: ReferenceData) -> LeadEnriched:
    profile = event.payload.model_copy(
        update={"company": company_profile(event.payload, reference)}
    )
    return LeadEnriched(**event.follow("LeadEnriched", payload=profile))
