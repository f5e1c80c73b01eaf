"""Enrich: fill the lead's profile from internal and reference data before asking anyone.

A chain of providers (seed 002 §6.4: "Recherche in Datenbanken"), each a pure
object that looks at the profile as enriched so far and returns the facts it
found, each with a confidence. The chain applies a fact unless a more
confident one is already there, and keeps every applied fact on the profile,
so a rep can see where a value came from. RevOps picks and orders providers
in enrichment.yaml of the rules directory; a provider of one's own (an external API) is
named there as `package.module:Factory`.
"""

from __future__ import annotations

import csv
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.domain.enrich.profile import LeadDefinition
from pipeline.domain.rules import RULE
from pipeline.errors import ConfigError
from schemas.lead import Enrichment, LeadCaptured, LeadEnriched, LeadProfile

log = structlog.get_logger("leadflow.enrich")


def _domain_list(text: str) -> frozenset[str]:
    lines = (line.strip().lower() for line in text.splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def _csv_rows(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines))


@dataclass(frozen=True)
class DirectoryEntry:
    domain: str
    name: str
    industry: str | None
    size_band: str | None
    employees: int | None
    country: str | None
    postal_code: str | None


@dataclass(frozen=True)
class PostalRegion:
    """Where a postal code lies (reference data `de_postal_regions.csv`): state,
    region and sales territory. Not `RoutingRegion`, a region a routing rule names."""

    state: str
    region: str
    territory: str


@dataclass(frozen=True)
class ReferenceData:
    """The reference tables, loaded once at start (`pipeline.config.reference` reads
    the shipped files in pipeline/reference/ or the operator's directory file)."""

    free_mail_domains: frozenset[str]
    disposable_domains: frozenset[str] = frozenset()
    directory: Mapping[str, DirectoryEntry] = field(default_factory=dict)
    postal_regions: Mapping[str, PostalRegion] = field(default_factory=dict)

    @classmethod
    def parse(
        cls, free_mail_domains: str, disposable_domains: str, directory: str, postal_regions: str
    ) -> ReferenceData:
        """The tables from their files' text: two domain lists (one a line, # comments),
        the company directory CSV (`load_directory`) and postal regions CSV
        (prefix,state,region,territory)."""
        return cls(
            free_mail_domains=_domain_list(free_mail_domains),
            disposable_domains=_domain_list(disposable_domains),
            directory=load_directory(directory),
            postal_regions={
                row["prefix"]: PostalRegion(row["state"], row["region"], row["territory"])
                for row in _csv_rows(postal_regions)
            },
        )


def load_directory(text: str) -> dict[str, DirectoryEntry]:
    """A directory CSV: domain,name,industry,size_band,employees,country,postal_code,city."""
    entries = {}
    for row in _csv_rows(text):
        employees = row.get("employees") or ""
        entries[row["domain"].strip().lower()] = DirectoryEntry(
            domain=row["domain"].strip().lower(),
            name=row["name"],
            industry=row.get("industry") or None,
            size_band=row.get("size_band") or None,
            employees=int(employees) if employees.isdigit() else None,
            country=row.get("country") or None,
            postal_code=row.get("postal_code") or None,
        )
    return entries


@runtime_checkable
class Provider(Protocol):
    """An enrichment source: pure, fast, and honest about its confidence.

    An external API as provider should answer from a cache or within a short
    timeout; a provider that raises is logged and skipped, the lead goes on.
    """

    @property
    def name(self) -> str: ...

    def enrich(self, profile: LeadProfile) -> list[Enrichment]: ...


def _email_domain(profile: LeadProfile) -> str | None:
    email = profile.contact.email
    return email.rsplit("@", 1)[1].lower() if email and "@" in email else None


@dataclass(frozen=True)
class EmailDomainProvider:
    """E-mail domain → company domain; free-mail means B2C, throw-away means unreachable."""

    reference: ReferenceData
    name: str = "email_domain"

    def enrich(self, profile: LeadProfile) -> list[Enrichment]:
        def fact(path: str, value: str | bool, confidence: float) -> Enrichment:
            return Enrichment(provider=self.name, field=path, value=value, confidence=confidence)

        found = []
        if profile.contact.company:
            found.append(fact("company.name", profile.contact.company, 1.0))
        domain = _email_domain(profile)
        if domain in self.reference.disposable_domains:
            found += [fact("company.disposable", True, 0.95), fact("company.segment", "b2c", 0.5)]
        elif domain in self.reference.free_mail_domains:
            found += [fact("company.free_mail", True, 0.95), fact("company.segment", "b2c", 0.8)]
        elif domain is not None:
            found += [fact("company.domain", domain, 0.9), fact("company.segment", "b2b", 0.8)]
        elif profile.contact.company:
            found.append(fact("company.segment", "b2b", 0.6))
        return found


@dataclass(frozen=True)
class CompanyDirectoryProvider:
    """Company domain → name, industry, size, location from a company directory."""

    reference: ReferenceData
    name: str = "company_directory"

    def enrich(self, profile: LeadProfile) -> list[Enrichment]:
        domain = profile.company.domain if profile.company else None
        entry = None
        while domain and entry is None:  # vertrieb.firma.de → firma.de
            entry = self.reference.directory.get(domain)
            domain = domain.split(".", 1)[1] if domain.count(".") > 1 else None
        if entry is None:
            return []
        values: dict[str, str | int | None] = {
            "company.name": entry.name,
            "company.industry": entry.industry,
            "company.size_band": entry.size_band,
            "company.employees": entry.employees,
            "company.country": entry.country,
            "company.postal_code": entry.postal_code,
        }
        return [
            Enrichment(provider=self.name, field=path, value=value, confidence=0.9)
            for path, value in values.items()
            if value is not None
        ]


@dataclass(frozen=True)
class PostalRegionProvider:
    """German postal code → federal state, region and sales territory (longest prefix wins)."""

    reference: ReferenceData
    name: str = "postal_region"

    def enrich(self, profile: LeadProfile) -> list[Enrichment]:
        contact, company = profile.contact, profile.company
        candidates = [(contact.postal_code, contact.country, 0.9)]
        if company is not None:  # the company's seat is a weaker guess for the person
            candidates.append((company.postal_code, company.country, 0.6))
        for code, country, confidence in candidates:
            region = self._lookup(code, country)
            if region is not None:
                return [
                    Enrichment(provider=self.name, field=path, value=value, confidence=confidence)
                    for path, value in (
                        ("territory.state", region.state),
                        ("territory.region", region.region),
                        ("territory.territory", region.territory),
                    )
                ]
        return []

    def _lookup(self, code: str | None, country: str | None) -> PostalRegion | None:
        if code is None or country not in (None, "DE"):
            return None
        digits = code.strip().removeprefix("D-")
        if len(digits) != 5 or not digits.isdigit():
            return None
        for length in range(5, 0, -1):
            region = self.reference.postal_regions.get(digits[:length])
            if region is not None:
                return region
        return None


@dataclass(frozen=True)
class CompanyHistory:
    earlier_inquiries: int
    customer: bool


class HistoryLookup(Protocol):
    """Internal data about a company before this inquiry: earlier inquiries, customer or not."""

    def company(self, domain: str, inquiry_id: str) -> CompanyHistory | None: ...


MAX_REMEMBERED = 100


class CompanyRecord(BaseModel):
    """What the pipeline itself saw of a company: its inquiries (ids, so a repeat
    counts once) and whether a deal with it was won."""

    model_config = ConfigDict(frozen=True)

    inquiries: list[str] = Field(default_factory=list)
    customer: bool = False

    def with_inquiry(self, inquiry_id: str) -> CompanyRecord:
        if inquiry_id in self.inquiries:
            return self
        kept = [*self.inquiries, inquiry_id][-MAX_REMEMBERED:]
        return self.model_copy(update={"inquiries": kept})

    @staticmethod
    def merge(records: Iterable[CompanyRecord]) -> CompanyRecord:
        inquiries: dict[str, None] = {}
        customer = False
        for record in records:
            inquiries.update(dict.fromkeys(record.inquiries))
            customer = customer or record.customer
        return CompanyRecord(inquiries=list(inquiries), customer=customer)

    def before(self, inquiry_id: str) -> CompanyHistory | None:
        earlier = len([i for i in self.inquiries if i != inquiry_id])
        return CompanyHistory(earlier, self.customer) if earlier or self.customer else None


@dataclass(frozen=True)
class Histories:
    """Several history sources as one: inquiries add up, a customer in any is a customer."""

    sources: list[HistoryLookup]

    def company(self, domain: str, inquiry_id: str) -> CompanyHistory | None:
        found = [h for s in self.sources if (h := s.company(domain, inquiry_id)) is not None]
        if not found:
            return None
        return CompanyHistory(
            earlier_inquiries=sum(h.earlier_inquiries for h in found),
            customer=any(h.customer for h in found),
        )


@dataclass(frozen=True)
class CustomerList:
    """Internal history from a CRM export (CSV with a `domain` column, one customer a row)."""

    customers: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> CustomerList:
        """The customers of a CRM export's text (`pipeline.config.reference` reads it)."""
        rows = _csv_rows(text)
        return cls(frozenset(row["domain"].strip().lower() for row in rows if row.get("domain")))

    def company(self, domain: str, inquiry_id: str) -> CompanyHistory | None:
        return CompanyHistory(0, customer=True) if domain in self.customers else None


@dataclass(frozen=True)
class InternalHistoryProvider:
    """Earlier inquiries and customer status of the lead's company, from our own data."""

    history: HistoryLookup
    name: str = "internal_history"

    def enrich(self, profile: LeadProfile) -> list[Enrichment]:
        domain = profile.company.domain if profile.company else None
        known = self.history.company(domain, profile.inquiry_id) if domain else None
        if known is None:
            return []
        return [
            Enrichment(
                provider=self.name,
                field="company.earlier_inquiries",
                value=known.earlier_inquiries,
                confidence=1.0,
            ),
            Enrichment(
                provider=self.name, field="company.customer", value=known.customer, confidence=1.0
            ),
        ]


BUILT_IN: dict[str, Callable[[ReferenceData, HistoryLookup], Provider]] = {
    "email_domain": lambda ref, _: EmailDomainProvider(ref),
    "company_directory": lambda ref, _: CompanyDirectoryProvider(ref),
    "internal_history": lambda _, history: InternalHistoryProvider(history),
    "postal_region": lambda ref, _: PostalRegionProvider(ref),
}


class ProviderSpec(BaseModel):
    """A provider in enrichment.yaml: a built-in name or `package.module:Factory`."""

    model_config = RULE

    use: str
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("use")
    @classmethod
    def _exists(cls, use: str) -> str:
        if use in BUILT_IN:
            return use
        if ":" not in use:
            raise ValueError(
                f"unknown provider {use!r}; built-in ones are {', '.join(BUILT_IN)}, "
                "your own is written as package.module:Factory"
            )
        _import(use)
        return use


def _import(ref: str) -> Callable[..., Provider]:
    module, _, name = ref.partition(":")
    try:
        factory = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import provider {ref!r}: {exc}") from exc
    if not callable(factory):
        raise ValueError(f"provider {ref!r} is not callable")
    return factory  # type: ignore[no-any-return]


class EnrichmentRules(BaseModel):
    """enrichment.yaml (rules directory): providers in order, and the lead definition."""

    model_config = RULE

    providers: list[ProviderSpec] = Field(min_length=1)
    customers_file: Path | None = Field(
        default=None, description="CSV export of existing customers (column domain)."
    )
    company_directory_file: Path | None = None
    lead_definition: LeadDefinition = Field(default_factory=LeadDefinition)

    @field_validator("providers", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"use": v} if isinstance(v, str) else v for v in value]
        return value


@dataclass(frozen=True)
class EnrichmentChain:
    providers: list[Provider]
    definition: LeadDefinition

    @classmethod
    def build(
        cls, rules: EnrichmentRules, reference: ReferenceData, history: HistoryLookup
    ) -> EnrichmentChain:
        providers = [
            BUILT_IN[spec.use](reference, history)
            if spec.use in BUILT_IN
            else _import(spec.use)(**spec.options)
            for spec in rules.providers
        ]
        for spec, provider in zip(rules.providers, providers, strict=True):
            if not isinstance(provider, Provider):
                raise ConfigError(
                    f"enrichment.yaml: {spec.use} did not make a provider; its factory must "
                    "return an object with a name and enrich(profile)"
                )
        return cls(providers, rules.lead_definition)

    def run(self, profile: LeadProfile) -> LeadProfile:
        data = profile.model_dump()
        data["company"] = data.get("company") or {}
        data["territory"] = data.get("territory") or {}
        applied: dict[str, Enrichment] = {e.field: e for e in profile.enrichments}
        current = LeadProfile.model_validate(data)
        for provider in self.providers:
            try:
                found = provider.enrich(current)
                trial = {k: dict(v) if k in WRITABLE else v for k, v in data.items()}
                taken = _apply(trial, applied, found)
                current = LeadProfile.model_validate(trial)
            except Exception:
                # An external provider's bug or outage must not hold the lead up.
                log.warning("enrich.provider_failed", provider=provider.name, exc_info=True)
                continue
            data = trial
            applied.update(taken)
        data["enrichments"] = list(applied.values())
        data["territory"] = data["territory"] or None
        enriched = LeadProfile.model_validate(data)
        return enriched.model_copy(update={"missing": self.definition.gaps(enriched)})


WRITABLE = ("company", "territory")
"""The profile sections a provider may fill; what the person said is never overwritten."""


def _apply(
    data: dict[str, Any], applied: dict[str, Enrichment], found: list[Enrichment]
) -> dict[str, Enrichment]:
    """Write each fact unless a more confident one is there; return the facts taken."""
    taken: dict[str, Enrichment] = {}
    for fact in found:
        section, _, key = fact.field.partition(".")
        if section not in WRITABLE or not key:
            raise ValueError(
                f"{fact.provider} wrote {fact.field}; writable: company.*, territory.*"
            )
        before = taken.get(fact.field) or applied.get(fact.field)
        if before is not None and before.confidence >= fact.confidence:
            continue
        data[section][key] = fact.value
        taken[fact.field] = fact
    return taken


def enrich_lead(event: LeadCaptured, chain: EnrichmentChain) -> LeadEnriched:
    return LeadEnriched(**event.follow("LeadEnriched", payload=chain.run(event.payload)))
