"""Realistic demo inquiries: several channels and campaigns, German and other
addresses, free-mail and company addresses, some invalid, some re-sent.

Pure and seeded, so the demo, the tests and the benchmarks get the same mix.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from rapidfuzz import fuzz

from pipeline.domain.identify.identity import fold
from schemas.inputs import CrmOutcome
from schemas.lead import LeadAssigned

CHANNELS: list[tuple[str, float, list[str]]] = [
    ("web_form", 0.30, ["spring-launch", "seo-blog", "pricing-page"]),
    ("paid_ads", 0.15, ["google-crm-keywords", "linkedin-decision-makers"]),
    ("trade_fair", 0.15, ["dmexco-2026", "it-sa-2026"]),
    ("webinar", 0.10, ["webinar-lead-scoring", "webinar-crm-migration"]),
    ("email", 0.10, ["info-inbox"]),
    ("phone", 0.10, ["hotline"]),
    ("referral", 0.05, ["partner-program"]),
    ("response_card", 0.05, ["print-ad-cw-11"]),
]
FIRST = [
    "Anna",
    "Lukas",
    "Mia",
    "Leon",
    "Sophie",
    "Felix",
    "Emma",
    "Paul",
    "Laura",
    "Jonas",
    "Olivia",
    "James",
    "Chloé",
    "Marco",
    "Aylin",
    "Piotr",
]
LAST = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Koch",
    "Smith",
    "Dubois",
    "Rossi",
    "Yılmaz",
    "Nowak",
    "Jensen",
]
COMPANIES = [
    ("Nordlicht Software GmbH", "nordlicht-software.de", "IT", 120),
    ("Rheinmetall Werkzeugbau AG", "rw-werkzeugbau.de", "Manufacturing", 2400),
    ("Alpen Logistik GmbH", "alpen-logistik.at", "Logistics", 310),
    ("Helvetia Data AG", "helvetia-data.ch", "Software", 45),
    ("Hanse Finanz KG", "hanse-finanz.de", "Finance", 800),
    ("Bavaria Motorsysteme GmbH", "bavaria-motor.de", "Automotive", 5200),
    ("Loire Conseil SARL", "loire-conseil.fr", "Consulting", 25),
    ("Thames Analytics Ltd", "thames-analytics.co.uk", "IT", 90),
    ("Spreewald Telekom GmbH", "spreewald-telekom.de", "Telecommunications", 1500),
    ("Elbe Medizintechnik GmbH", "elbe-medtech.de", "Healthcare", 220),
]
FREE_MAIL = ["gmail.com", "web.de", "gmx.de", "t-online.de", "outlook.com"]
PLACES = [
    ("10115", "Berlin", "DE"),
    ("80331", "München", "DE"),
    ("20095", "Hamburg", "DE"),
    ("50667", "Köln", "DE"),
    ("60311", "Frankfurt am Main", "DE"),
    ("70173", "Stuttgart", "DE"),
    ("04109", "Leipzig", "DE"),
    ("1010", "Wien", "AT"),
    ("8001", "Zürich", "CH"),
    ("75001", "Paris", "FR"),
    ("SW1A 1AA", "London", "GB"),
    ("10001", "New York", "US"),
]
PRODUCTS = ["crm-suite", "marketing-automation", "analytics"]
TIMEFRAMES = [0, 1, 2, 3, 6, 10, 12, 18, None]


DEMO_START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
LOST_REASONS = ["budget", "no decision", "chose a competitor", "timing"]
DEFAULT_DEAL_EUR = 20_000.0


@dataclass(frozen=True)
class DemoMessage:
    value: bytes
    kind: str  # "valid", "invalid" or "duplicate"


def demo_inquiries(
    count: int,
    seed: int = 7,
    run: str = "",
    invalid_share: float = 0.06,
    duplicate_share: float = 0.08,
    start: datetime = DEMO_START,
    spacing: timedelta = timedelta(minutes=7),
) -> list[DemoMessage]:
    """`run` makes the inquiry ids of one run distinct from another's; the n-th
    inquiry was received at `start + n × spacing`."""
    rng = random.Random(seed)
    messages: list[DemoMessage] = []
    originals: list[bytes] = []
    staff: dict[str, list[str]] = {}
    for n in range(count):
        roll = rng.random()
        if originals and roll < duplicate_share:
            messages.append(DemoMessage(rng.choice(originals), "duplicate"))
        elif roll < duplicate_share + invalid_share:
            messages.append(DemoMessage(_invalid(rng, f"{run}{n}"), "invalid"))
        else:
            value = orjson.dumps(_inquiry(rng, f"{run}{n:06d}", start + spacing * n, staff))
            originals.append(value)
            messages.append(DemoMessage(value, "valid"))
    return messages


def _inquiry(
    rng: random.Random, n: str, when: datetime, staff: dict[str, list[str]]
) -> dict[str, object]:
    channel, campaigns = _channel(rng)
    first, last = rng.choice(FIRST), rng.choice(LAST)
    company, domain, industry, employees = rng.choice(COMPANIES)
    private = rng.random() < 0.25
    if not private:
        first, last, private = _new_colleague(rng, (first, last), staff.setdefault(company, []))
    postal_code, city, country = rng.choice(PLACES)
    local = f"{first}.{last}".lower().replace("ü", "ue").replace("é", "e").replace("ı", "i")
    inquiry: dict[str, object] = {
        "inquiry_id": f"demo-{n}",
        "received_at": when.isoformat(),
        "source": {
            "channel": channel,
            "campaign": rng.choice(campaigns),
            **({"utm_source": "google", "utm_medium": "cpc"} if channel == "paid_ads" else {}),
        },
        "contact": {
            "first_name": first,
            "last_name": last,
            "email": f"{local}.{n}@{rng.choice(FREE_MAIL) if private else domain}",
            "phone": f"+49 30 {rng.randint(1000000, 9999999)}" if rng.random() < 0.6 else None,
            "company": None if private else company,
            "postal_code": postal_code,
            "city": city,
            "country": country,
        },
        "message": rng.choice(
            [
                "Bitte senden Sie mir ein Angebot.",
                "We would like a demo for our sales team.",
                "Welche Schnittstellen zu SAP gibt es?",
                "Interested in pricing for 50 users.",
                None,
            ]
        ),
        "product_interest": rng.sample(PRODUCTS, k=rng.randint(1, 2)),
        "answers": {
            "purchase_timeframe_months": rng.choice(TIMEFRAMES),
            "order_volume_eur": rng.choice([None, 15000.0, 70000.0, 180000.0, 320000.0, 650000.0]),
            "industry": None if private else industry,
            "employees": None if private else employees,
            "decision_maker": rng.choice([True, False, None]),
        },
        "consent": {"marketing_email": rng.random() < 0.7},
    }
    return inquiry


DISTINCT_NAMES = 90.0
"""Token-sort ratio below which two demo names count as clearly different."""


def _new_colleague(
    rng: random.Random, name: tuple[str, str], colleagues: list[str]
) -> tuple[str, str, bool]:
    """A name no one at the company has yet, nor one a letter away: every demo
    inquiry is its own person, and a reader of the demo's leads tells them apart
    at a glance (identity resolution would, by their own addresses). Where the
    names run out the person writes from a private address instead."""
    for _ in range(50):
        folded = fold(" ".join(name))
        if all(fuzz.token_sort_ratio(folded, other) < DISTINCT_NAMES for other in colleagues):
            colleagues.append(folded)
            return *name, False
        name = rng.choice(FIRST), rng.choice(LAST)
    return *name, True


def _channel(rng: random.Random) -> tuple[str, list[str]]:
    roll, acc = rng.random(), 0.0
    for name, share, campaigns in CHANNELS:
        acc += share
        if roll < acc:
            return name, campaigns
    return CHANNELS[0][0], CHANNELS[0][2]


def _invalid(rng: random.Random, n: str) -> bytes:
    channel, campaigns = _channel(rng)
    source = {"channel": channel, "campaign": rng.choice(campaigns)}
    kind = rng.randrange(4)
    if kind == 0:  # a typo'd address and nothing else
        body = {
            "inquiry_id": f"bad-{n}",
            "source": source,
            "contact": {"last_name": "Mustermann", "email": "max.mustermann(at)firma.de"},
        }
    elif kind == 1:  # nobody to contact
        body = {"inquiry_id": f"bad-{n}", "source": source, "contact": {"company": "Unbekannt"}}
    elif kind == 2:  # wrong types from a broken form
        body = {
            "inquiry_id": f"bad-{n}",
            "source": source,
            "contact": {"email": "info@example.org"},
            "answers": {"employees": "viele"},
        }
    else:  # cut off in transit
        return orjson.dumps({"inquiry_id": f"bad-{n}", "source": source})[:-7]
    return orjson.dumps(body)


def crm_outcomes(assigned: Sequence[LeadAssigned], seed: int = 7) -> list[CrmOutcome]:
    """What a CRM might report for sales-ready leads, closing the loop in the demo:
    most are contacted (1–45 minutes after routing), some returned as not ready,
    about a third become opportunities and most of those are won (the order
    volume the lead named, else 20,000 EUR); the rest are lost with a reason.
    Times are the CRM's: after the assignment, so partly in the future."""
    rng = random.Random(seed)
    found: list[CrmOutcome] = []
    for lead in sorted(assigned, key=lambda a: str(a.lead_id)):
        roll = rng.random()
        if roll < 0.1:
            continue  # not contacted yet
        found.append(_crm(lead, "contacted", timedelta(minutes=rng.uniform(1, 45))))
        if roll < 0.2:
            found.append(_crm(lead, "returned", timedelta(days=1), reason="not ready yet"))
        elif roll < 0.55:
            found.append(_crm(lead, "opportunity", timedelta(days=2)))
            closed = timedelta(days=rng.uniform(5, 20))
            if rng.random() < 0.7:
                volume = lead.payload.qualification.profile.answers.order_volume_eur
                found.append(_crm(lead, "won", closed, amount_eur=volume or DEFAULT_DEAL_EUR))
            else:
                found.append(_crm(lead, "lost", closed, reason=rng.choice(LOST_REASONS)))
        else:
            found.append(_crm(lead, "lost", timedelta(days=3), reason=rng.choice(LOST_REASONS)))
    return found


def _crm(lead: LeadAssigned, outcome: str, after: timedelta, **fields: Any) -> CrmOutcome:
    return CrmOutcome(
        outcome_id=f"demo-crm-{lead.lead_id}-{outcome}",
        lead_id=lead.lead_id,
        occurred_at=lead.occurred_at + after,
        outcome=outcome,  # type: ignore[arg-type]
        rep_id=lead.payload.owner.rep_id,
        **fields,
    )
