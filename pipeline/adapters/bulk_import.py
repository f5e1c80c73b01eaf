"""Bulk import: trade-fair and event lists (CSV, XLSX) and e-mails (.eml,
mbox) become inquiries.

A file in, inquiry bytes and per-row problems out; the CLI publishes, and
then counts how identity resolution placed the rows (`placed`): new leads, or
merged into a lead that existed. Inquiry ids come from the file's content and
the row number (or the Message-ID), so importing the same file twice creates
no second lead.
"""

from __future__ import annotations

import csv
import hashlib
import io
import mailbox
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage, Message
from email.utils import parseaddr
from pathlib import Path

import orjson
from pydantic import ValidationError

from pipeline.domain.capture.inquiry import inquiry_key, trace_id_for
from pipeline.domain.capture.plausibility import Plausibility, check_contact
from pipeline.domain.identify.identity import identity_key
from pipeline.domain.messages import Position, reasons_from
from schemas.inquiry import Inquiry
from schemas.lead import LeadCaptured
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
    trace: str | None = None
    """The trace id the pipeline's events of this row carry (rows that validate)."""


@dataclass
class Summary:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    errors: list[tuple[int, list[Reason]]] = field(default_factory=list)


def rows_from_file(
    path: Path, channel: str, campaign: str | None, overrides: dict[str, str], policy: Plausibility
) -> Iterator[Row]:
    """Dispatch by file type: .eml and .mbox are e-mails, .xlsx a sheet, else CSV."""
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix == ".eml":
        return email_rows([message_from_bytes(data, policy=email_policy.default)], policy)
    if suffix == ".mbox":
        return email_rows(mailbox.mbox(path, create=False), policy)
    table = xlsx_table(data) if suffix == ".xlsx" else csv_table(data)
    return read_rows(table, file_id(data), channel, campaign, overrides, policy)


def file_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def csv_table(data: bytes) -> Iterator[list[str]]:
    text = data.decode("utf-8-sig", errors="replace")
    dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    return csv.reader(io.StringIO(text), dialect)


def xlsx_table(data: bytes) -> Iterator[list[str]]:
    """The first sheet; numbers typed into cells (postal codes) come back as digits."""
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
    for values in sheet.iter_rows(values_only=True):
        yield [_cell(v) for v in values]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_rows(
    table: Iterable[list[str]],
    file: str,
    channel: str,
    campaign: str | None,
    overrides: dict[str, str],
    policy: Plausibility,
) -> Iterator[Row]:
    reader = iter(table)
    mapping = detect_mapping(next(reader, []), overrides)
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        values = {f: cells[i].strip() for i, f in mapping.items() if i < len(cells)}
        body: dict[str, object] = {
            "inquiry_id": f"import-{file}-{number}",
            "source": {"channel": channel, **({"campaign": campaign} if campaign else {})},
            "contact": {f: v for f, v in values.items() if f in CONTACT and v},
            "product_interest": [values["product_interest"]]
            if values.get("product_interest")
            else [],
        }
        if values.get("message"):
            body["message"] = values["message"]
        yield checked_row(number, orjson.dumps(body), policy)


def checked_row(number: int, value: bytes, policy: Plausibility) -> Row:
    try:
        inquiry = Inquiry.model_validate_json(value)
    except ValidationError as exc:
        return Row(number, value, reasons_from(exc), None)
    checked = check_contact(inquiry.contact, policy)
    # an imported row carries its own inquiry id: the position never names it
    trace = trace_id_for(inquiry_key(inquiry, Position("import", 0, number)))
    return Row(number, value, checked.blocking, identity_key(checked.contact), str(trace))


def email_rows(messages: Iterable[Message], policy: Plausibility) -> Iterator[Row]:
    """Sender, subject and body text of each e-mail become an inquiry of channel `email`."""
    for number, message in enumerate(messages, start=1):
        name, address = parseaddr(str(message.get("From", "")))
        first, _, last = name.strip().rpartition(" ")
        subject = str(message.get("Subject", "")).strip()
        text = _body_text(message)
        ident = str(message.get("Message-ID", "")).strip("<> ") or file_id(bytes(message))
        body: dict[str, object] = {
            "inquiry_id": f"mail-{ident}"[:128],
            "source": {"channel": "email"},
            "contact": {
                k: v
                for k, v in (("email", address), ("first_name", first), ("last_name", last))
                if v
            },
            "message": "\n\n".join(p for p in (subject, text) if p)[:10_000] or None,
            "subject": subject or None,
        }
        yield checked_row(number, orjson.dumps(body), policy)


def _body_text(message: Message) -> str:
    if isinstance(message, EmailMessage):
        part = message.get_body(preferencelist=("plain",))
        return str(part.get_content()).strip() if part is not None else ""
    for piece in message.walk():
        if piece.get_content_type() == "text/plain":
            payload = piece.get_payload(decode=True)
            if isinstance(payload, bytes):
                charset = piece.get_content_charset() or "utf-8"
                return payload.decode(charset, errors="replace").strip()
    return ""


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


@dataclass
class Placement:
    """How identity resolution placed the rows it was given (accepted and duplicates)."""

    new_leads: int = 0
    merged: Counter[str] = field(default_factory=Counter)
    """Rows merged into a lead that existed, by the key that found it."""
    merged_into_this_file: int = 0
    """Of those, rows merged into a lead that an earlier row of the file started."""
    excluded: int = 0
    """Rows an exclusion policy answered without a lead (competitor, student, …)."""
    pending: int = 0
    """Rows the pipeline had not placed when the import stopped waiting."""


def placed(rows: list[Row], outcomes: Mapping[str, LeadCaptured | None]) -> Placement:
    """Count the import's outcomes: `outcomes` maps a trace to its `LeadCaptured`,
    or to None for an excluded inquiry (answered only)."""
    placement = Placement()
    traced = [row.trace for row in rows if not row.problems and row.trace]
    created = {
        str(c.lead_id) for t in traced if (c := outcomes.get(t)) is not None and not c.merged
    }
    for trace in traced:
        if trace not in outcomes:
            placement.pending += 1
            continue
        captured = outcomes[trace]
        if captured is None:
            placement.excluded += 1
        elif not captured.merged:
            placement.new_leads += 1
        else:
            placement.merged[captured.matched_on or "unknown"] += 1
            placement.merged_into_this_file += str(captured.lead_id) in created
    return placement


def placement_line(placement: Placement) -> str:
    """One line for the operator: new leads, merges by key, excluded, not yet placed."""
    merged = sum(placement.merged.values())
    by_key = ", ".join(f"{n} on {kind}" for kind, n in sorted(placement.merged.items()))
    line = f"{placement.new_leads} new leads, {merged} merged into existing leads"
    if merged:
        line += f" ({by_key}; {placement.merged_into_this_file} into a lead of an earlier row)"
    line += f", {placement.excluded} excluded (answered, no lead)"
    if placement.pending:
        line += f", {placement.pending} not placed yet"
    return line
