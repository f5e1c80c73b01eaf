"""Small builders for domain objects, so each test states only what matters to it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.config.reference import postal_table, reference_data
from pipeline.config.rules import DEFAULT_ENRICHMENT
from pipeline.config.settings import NAME_MATCH, SHIPPED_RULES
from pipeline.config.yaml_model import load_yaml_model
from pipeline.domain.capture.exclusion import ExclusionPolicy
from pipeline.domain.capture.inquiry import capture_inquiry
from pipeline.domain.capture.plausibility import Plausibility
from pipeline.domain.enrich.enrichment import (
    CustomerList,
    EnrichmentChain,
    ReferenceData,
    enrich_lead,
    load_directory,
)
from pipeline.domain.identify.identity import IdentityBook
from pipeline.domain.messages import Position
from schemas.envelope import EventBase, derive_id
from schemas.inputs import CrmOutcome
from schemas.lead import (
    ActivityUnattached,
    IdentityClaimed,
    InquiryAccepted,
    LeadCaptured,
    LeadEnriched,
    OutcomeRecorded,
    Owner,
    RecordedOutcome,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
AT = Position("leads.inquiries", 2, 41)
POLICY = Plausibility("DE", postal_table())
EXCLUSIONS = load_yaml_model(SHIPPED_RULES / "exclusions.yaml", ExclusionPolicy)
DIRECTORY = """domain,name,industry,size_band,employees,country,postal_code,city
acme-werke.de,ACME Werke GmbH,Manufacturing,250-999,420,DE,80331,München
"""
REFERENCE = ReferenceData(
    free_mail_domains=frozenset({"gmail.com", "web.de"}),
    disposable_domains=frozenset({"mailinator.com"}),
    directory=load_directory(DIRECTORY),
    postal_regions=reference_data().postal_regions,
)
CHAIN = EnrichmentChain.build(DEFAULT_ENRICHMENT, REFERENCE, CustomerList())


def inquiry(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inquiry_id": "form-1",
        "source": {"channel": "web_form", "campaign": "spring"},
        "contact": {"first_name": "Anna", "last_name": "Schmidt", "email": "anna@firma.de"},
        "product_interest": ["crm-suite"],
        "answers": {},
    }
    body.update(overrides)
    return body


def accepted(**overrides: Any) -> InquiryAccepted:
    result = capture_inquiry(orjson.dumps(inquiry(**overrides)), AT, NOW, POLICY, EXCLUSIONS)
    assert isinstance(result, InquiryAccepted), result
    return result


def identify(
    book: IdentityBook, *messages: EventBase, claims: list[IdentityClaimed] | None = None
) -> list[EventBase]:
    """What identification makes of these messages: each step's hops and claims
    are delivered back to the book, as the broker would (and the claims to
    `claims`); the rest is returned."""
    queue, out = list(messages), []
    while queue:
        message = queue.pop(0)
        if isinstance(message, InquiryAccepted):
            queue += book.identify(message)
        elif isinstance(message, IdentityClaimed):
            if claims is not None:
                claims.append(message)
            queue += book.record(message, NOW)
        elif isinstance(message, ActivityUnattached):
            found = book.identify_activity(message, AT, NOW)
            queue += [found] if found else []
        else:
            out.append(message)
    return out


def new_book() -> IdentityBook:
    return IdentityBook(leads={}, waiting={}, name_match=NAME_MATCH)


def captured(**overrides: Any) -> LeadCaptured:
    [lead] = identify(new_book(), accepted(**overrides))
    assert isinstance(lead, LeadCaptured), lead
    return lead


def enriched(**overrides: Any) -> LeadEnriched:
    return enrich_lead(captured(**overrides), CHAIN)


def recorded(outcome: CrmOutcome, cycle: int = 1, rep: str = "anna.berg") -> OutcomeRecorded:
    """A CRM outcome as the distribute stage applied it to the lead's assignment."""
    owner = Owner(rep_id=rep, name=rep, email=f"{rep}@leadflow.example")
    return OutcomeRecorded(
        event_id=derive_id("OutcomeRecorded", outcome.lead_id, outcome.outcome_id),
        lead_id=outcome.lead_id,
        occurred_at=outcome.occurred_at,
        emitted_at=outcome.occurred_at,
        payload=RecordedOutcome(outcome=outcome, owner=owner, queue="inbound", cycle=cycle),
    )
