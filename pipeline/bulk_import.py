"""Bulk import of trade-fair and event lists (CSV): rows become inquiries.

Pure: a file's rows in, inquiry bytes and per-row problems out; the CLI
publishes. Inquiry ids come from the file's content and the row number, so
importing the same file twice creates no second lead.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
from pydantic import ValidationError

from pipeline.identity import identity_key
from pipeline.messages import reasons_from
from pipeline.plausibility import Plausibility, check_contact
from schemas.inquiry import Inquiry
from schemas.rejected import Reason

ALIASES: dict[str, set[str]] = {
    "email": {"email", "emailadresse", "emailaddress", "mail"},
    "first_name": {"firstname", "vorname", "givenname"},
    "last_name": {"lastname", "nachname", "surname", "familienname", "name"},
    "phone": {"phone", "telefon", "tel", "telefonnummer", "phonenumber", "mobil", "mobile"},
    "company": {"company", "firma", "unternehmen", "organisation", "organization"},
    "job_title": {"jobtitle", "title", "position", "funktion", "titel"},
    "postal_code": {"postalcode", "zip", "zipcode", "postcode", "plz", "postleitzahl"},
    "city": {"city", "ort", "stadt", "town"},
    "country": {"country", "land", "countrycode", "laenderkennung"},
    "message": {"message", "notes", "note", "notiz", "bemerkung", "nachricht", "kommentar"},
    "product_interest": {"product", "produkt", "productinterest", "interesse"},
}
CONTACT = {"email", "first_name", "last_name", "phone", "company", "job_title"}
CONTACT |= {"postal_code", "city", "country"}


def header_key(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.casefold().replace("ä", "ae").replace("ß", "ss"))


def detect_mapping(headers: list[str], overrides: dict[str, str]) -> dict[int, str]:
    """Column index → inquiry field; `overrides` maps field → header and wins."""
    by_header = {header_key(h): i for i, h in enumerate(headers)}
    mapping: dict[int, str] = {}
    for i, header in enumerate(headers):
        found = next((f for f, names in ALIASES.items() if header_key(header) in names), None)
        if found is not None and found not in mapping.values():
            mapping[i] = found
    for target, header in overrides.items():
        if target not in ALIASES:
            raise ValueError(f"unknown field {target!r}; one of {', '.join(ALIASES)}")
        if header_key(header) not in by_header:
            raise ValueError(f"no column {header!r} in the file")
        mapping = {i: f for i, f in mapping.items() if f != target}
        mapping[by_header[header_key(header)]] = target
    return mapping


@dataclass(frozen=True)
class Row:
    number: int
    value: bytes
    problems: list[Reason]
    identity: str | None


@dataclass
class Summary:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    errors: list[tuple[int, list[Reason]]] = field(default_factory=list)


def read_rows(
    data: bytes,
    channel: str,
    campaign: str | None,
    overrides: dict[str, str],
    policy: Plausibility,
) -> Iterator[Row]:
    text = data.decode("utf-8-sig", errors="replace")
    dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    reader = csv.reader(io.StringIO(text), dialect)
    mapping = detect_mapping(next(reader), overrides)
    file_id = hashlib.sha256(data).hexdigest()[:12]
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        values = {f: cells[i].strip() for i, f in mapping.items() if i < len(cells)}
        body: dict[str, object] = {
            "inquiry_id": f"import-{file_id}-{number}",
            "source": {"channel": channel, **({"campaign": campaign} if campaign else {})},
            "contact": {f: v for f, v in values.items() if f in CONTACT and v},
            "product_interest": [values["product_interest"]]
            if values.get("product_interest")
            else [],
        }
        if values.get("message"):
            body["message"] = values["message"]
        value = orjson.dumps(body)
        try:
            contact = Inquiry.model_validate_json(value).contact
        except ValidationError as exc:
            yield Row(number, value, reasons_from(exc), None)
            continue
        checked = check_contact(contact, policy)
        yield Row(number, value, checked.blocking, identity_key(checked.contact))


def summarise(rows: list[Row]) -> Summary:
    summary, seen = Summary(), set()
    for row in rows:
        if row.problems:
            summary.rejected += 1
            summary.errors.append((row.number, row.problems))
        elif row.identity in seen:
            summary.duplicates += 1
        else:
            summary.accepted += 1
            seen.add(row.identity)
    return summary
