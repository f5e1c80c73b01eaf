"""Who a person is in our data, and how their personal data is recognised and removed.

Pure functions (no Kafka, no ClickHouse): the erasure adapters
(`pipeline/erasure.py`) use them to find a person's records in topics, tables
and the warehouse, and to strip personal fields from events that must stay
countable (ids, timestamps, channel, outcome).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

ERASED = "[erased]"
PERSONAL_FIELDS = frozenset(
    {
        "contact",
        "message",
        "recipient",
        "identity",
        "email",
        "phone",
        "first_name",
        "last_name",
        "original_b64",
    }
)
"""JSON keys whose values are personal data wherever they appear: the inquiry's
contact and free text, a touch's recipient, the identity key, an activity's
e-mail/phone, and a rejection's original bytes."""

_ORIGINAL = re.compile(rb'"original_b64"\s*:\s*"([A-Za-z0-9+/=]*)"')
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True)
class Person:
    """The identifiers an erasure or an export looks for."""

    lead_ids: frozenset[uuid.UUID] = frozenset()
    emails: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()
    """First and last names: too common to find a person by, but text in the
    person's own rows that names them is erased."""

    @property
    def markers(self) -> tuple[str, ...]:
        """Case-folded strings whose presence marks a record as this person's."""
        return tuple(sorted({*self.emails, *self.phones}))

    def found_in(self, raw: bytes | None) -> bool:
        """Does this message (key or value), or the original bytes a rejection
        carries inside it, mention the person?"""
        if not raw or not self.markers:
            return False
        return any(_mentions(text, self.markers) for text in texts_of(raw))

    def merge(self, other: Person) -> Person:
        return Person(
            self.lead_ids | other.lead_ids,
            self.emails | other.emails,
            self.phones | other.phones,
            self.names | other.names,
        )

    def named_in(self, text: str) -> bool:
        """Does the text mention the person's address, phone or name (as a word)?"""
        folded = text.casefold()
        if _mentions(folded, self.markers):
            return True
        return any(re.search(rf"\b{re.escape(name)}\b", folded) for name in self.names)


def person_for(subject: str) -> Person:
    """What the operator typed: a lead id, an e-mail address or a phone number."""
    subject = subject.strip()
    try:
        return Person(lead_ids=frozenset({uuid.UUID(subject)}))
    except ValueError:
        pass
    if "@" in subject:
        return Person(emails=frozenset({subject.casefold()}))
    return Person(phones=frozenset({subject}))


def texts_of(raw: bytes) -> Iterator[str]:
    """The message as text, then every base64 original it carries, decoded."""
    yield raw.decode("utf-8", errors="replace").casefold()
    for match in _ORIGINAL.finditer(raw):
        try:
            decoded = base64.b64decode(match.group(1), validate=True)
        except (binascii.Error, ValueError):
            continue
        yield decoded.decode("utf-8", errors="replace").casefold()


def _mentions(text: str, markers: Iterable[str]) -> bool:
    return any(marker.casefold() in text for marker in markers)


def contacts_in(document: Any) -> Person:
    """E-mail addresses and phone numbers a JSON document holds for its lead
    (contact fields, identity keys, activity e-mail/phone), for resolving a
    subject to everything we know about the person."""
    emails: set[str] = set()
    phones: set[str] = set()
    names: set[str] = set()

    def walk(node: Any, parent: str | None) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and parent in {"contact", "payload", None}:
                    if key == "email" and _EMAIL.fullmatch(value.strip()):
                        emails.add(value.strip().casefold())
                    elif key == "phone" and value.strip():
                        phones.add(value.strip())
                    elif key in {"first_name", "last_name"} and len(value.strip()) > 1:
                        names.add(value.strip().casefold())
                    elif key == "identity" and ":" in value:
                        kind, _, ident = value.partition(":")
                        (emails if kind == "email" else phones).add(ident.casefold())
                walk(value, key)
        elif isinstance(node, list):
            for item in node:
                walk(item, parent)

    walk(document, None)
    return Person(emails=frozenset(emails), phones=frozenset(phones), names=frozenset(names))


def redact_document(document: Any, person: Person) -> Any:
    """The document without personal data: personal fields become "[erased]"
    (a contact keeps only its country), and any other text that mentions the
    person is erased too. Ids, timestamps, channel and outcomes stay."""
    if isinstance(document, dict):
        out: dict[str, Any] = {}
        for key, value in document.items():
            if key == "contact" and isinstance(value, dict):
                out[key] = {k: v for k, v in value.items() if k == "country"}
            elif key in PERSONAL_FIELDS and value is not None:
                out[key] = "" if key == "original_b64" else ERASED
            else:
                out[key] = redact_document(value, person)
        return out
    if isinstance(document, list):
        return [redact_document(item, person) for item in document]
    if isinstance(document, str) and person.named_in(document):
        return ERASED
    return document


def redact_text(text: str, person: Person) -> str:
    """A stored string (JSON or not) without the person's data."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return ERASED if person.named_in(text) else text
    if not isinstance(parsed, dict | list):
        return ERASED if person.named_in(text) else text
    return orjson.dumps(redact_document(parsed, person)).decode()


@dataclass
class TableScan:
    """The latest value per key of one changelog partition, read from the log, and
    whether any record of it (also an overwritten or deleted one) mentions `person`."""

    person: Person = field(default_factory=Person)
    live: dict[bytes, bytes] = field(default_factory=dict)
    mentions_person: bool = False

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if not self.mentions_person:
            self.mentions_person = self.person.found_in(key) or self.person.found_in(value)
        if value is None:
            self.live.pop(key, None)
        else:
            self.live[key] = value

    def personal(self, person: Person) -> list[bytes]:
        """Keys whose key or current value mentions the person."""
        return [k for k, v in self.live.items() if person.found_in(k) or person.found_in(v)]
