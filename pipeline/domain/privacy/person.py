"""Who a person is in our data, and how their personal data is recognised and removed.

Pure functions (no Kafka, no ClickHouse): the erasure adapters
(`pipeline/adapters/kafka/erasure.py`, `pipeline/adapters/warehouse/erasure.py`) use
them to find a person's records in topics, tables
and the warehouse, and to strip personal fields from events that must stay
countable (ids, timestamps, channel, outcome).

A person is found by exact identity keys only (CONVENTIONS §12): their lead
ids, their case-folded e-mail addresses and their phone numbers in E.164. A
record is the person's *own* when its lead id is theirs or its contact or
identity fields hold one of their keys; someone else's record merely
*mentions* them when one of their keys stands in its text as a whole address
or number – never as part of a longer one (`s.brandt@gut.de` is not in
`jens.brandt@gut.de`, `+49 30 5551234` is not in `+49 30 55512348`). Names and
companies never find anyone ("Gut GmbH" is not in "Gutenberg Druck GmbH" nor
in "Guten Tag"); a name only decides what is erased inside the person's own
records.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson
import phonenumbers

from pipeline.domain.contact import normalise_phone
from schemas.privacy import EraseLead

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

_ORIGINAL = re.compile(r'"original_b64"\s*:\s*"([A-Za-z0-9+/=]*)"')
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_IDENTITY_KEY = re.compile(r"(email|phone):(\S+)")
"""An identity key as the pipeline spells it (`email:…`, `phone:+…`); a
`company:…` key is shared by everyone at the company and identifies nobody."""
_CONTACT_PARENTS = frozenset({"contact", "payload", None})
"""Where an `email`/`phone` field is the lead's own contact (not, say, its owner's)."""
_SEP = r"[\s()./-]"
_NOT_AFTER_DIGIT = rf"(?<![\d+])(?<![\d+]{_SEP})(?<![\d+]{_SEP}{{2}})"
_NOT_BEFORE_DIGIT = rf"(?!{_SEP}{{0,2}}\d)"


@dataclass(frozen=True)
class Person:
    """The identity keys an erasure or an export looks for."""

    lead_ids: frozenset[uuid.UUID] = frozenset()
    emails: frozenset[str] = frozenset()
    """Case-folded addresses."""
    phones: frozenset[str] = frozenset()
    """E.164 numbers (found in text however they are spelt: `030 5551234`,
    `+49 (0)30 555 12 34`)."""
    names: frozenset[str] = frozenset()
    """First and last names: too common to find a person by, but text in the
    person's own records that names them is erased."""

    @property
    def markers(self) -> tuple[str, ...]:
        """The addresses and numbers (as stored) that stand for this person."""
        return tuple(sorted({*self.emails, *self.phones}))

    @property
    def phone_digits(self) -> tuple[str, ...]:
        """The national significant number of each phone: every spelling of it
        holds these digits in a row once separators are dropped."""
        return tuple(sorted(n for n, _ in map(_phone_spellings, self.phones) if n))

    @cached_property
    def _phones(self) -> list[str]:
        """Each phone number, in each of its spellings, as a whole number."""
        found = []
        for phone in sorted(self.phones):
            for spelling in _phone_spellings(phone)[1]:
                digits = f"{_SEP}{{0,2}}".join(re.escape(ch) for ch in spelling)
                found.append(f"{_NOT_AFTER_DIGIT}{digits}{_NOT_BEFORE_DIGIT}")
        return found

    @cached_property
    def _phone(self) -> re.Pattern[str] | None:
        return re.compile("|".join(self._phones)) if self._phones else None

    @cached_property
    def _keys(self) -> re.Pattern[str] | None:
        """Each e-mail address and phone number as a whole token."""
        emails = [
            rf"(?<![\w.+-]){re.escape(email)}(?![\w-]|\.[\w-])" for email in sorted(self.emails)
        ]
        alternatives = [*emails, *self._phones]
        return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None

    @cached_property
    def _leads(self) -> re.Pattern[str] | None:
        ids = "|".join(str(i) for i in sorted(self.lead_ids, key=str))
        return re.compile(rf"(?<![\w-])(?:{ids})(?![\w-])", re.IGNORECASE) if ids else None

    def mentions(self, text: str) -> bool:
        """Does the text hold one of the person's addresses or numbers, whole?"""
        return self._keys is not None and self._keys.search(text) is not None

    def scrub(self, text: str) -> str:
        """The text with each of the person's addresses and numbers replaced by
        "[erased]", everything else (someone else's words) kept."""
        return text if self._keys is None else self._keys.sub(ERASED, text)

    def owns(self, document: Any) -> bool:
        """Is this JSON document the person's own record: its lead id (`lead_id`,
        or `lead` as the identity table has it) is theirs, or its contact or
        identity fields hold one of their keys? A list is theirs if any item is."""
        document = as_document(document)
        if isinstance(document, list):
            return any(self.owns(item) for item in document)
        if isinstance(document, dict) and _lead_of(document) in self.lead_ids:
            return True
        for kind, value in _identity_fields(document):
            if kind == "email" and value.strip().casefold() in self.emails:
                return True
            if kind == "phone" and self._phone is not None and self._phone.fullmatch(value.strip()):
                return True
        return False

    def owns_record(self, raw: bytes | str | None) -> bool:
        """Is the message (or the original bytes a rejection carries) the person's own?"""
        return bool(raw) and any(self.owns(as_document(text)) for text in texts_of(raw or b""))

    def mentioned_in(self, raw: bytes | str | None) -> bool:
        """Does the message, or the original bytes a rejection carries, mention the person?"""
        return bool(raw) and any(self.mentions(text) for text in texts_of(raw or b""))

    def found_in(self, raw: bytes | str | None) -> bool:
        """Is the message (a value) the person's own or does it mention them?"""
        return self.mentioned_in(raw) or self.owns_record(raw)

    def owns_key(self, raw: bytes | str | None) -> bool:
        """Does a message or table key name one of the person's leads (`<lead>`,
        `<lead>:<queue>:0`) or hold one of their keys?"""
        if not raw:
            return False
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        return (self._leads is not None and self._leads.search(text) is not None) or self.mentions(
            text
        )

    def as_json(self) -> dict[str, list[str]]:
        """The keys as JSON, each list sorted (a stable answer): what the worker's
        `/v1/privacy/person` answers and an export starts with; `from_json` reads it back."""
        return {
            "lead_ids": sorted(str(i) for i in self.lead_ids),
            "emails": sorted(self.emails),
            "phones": sorted(self.phones),
            "names": sorted(self.names),
        }

    @classmethod
    def from_json(cls, found: Mapping[str, Any]) -> Person:
        """The person `as_json` wrote (a missing key: none of that kind)."""
        return cls(
            frozenset(uuid.UUID(str(i)) for i in found.get("lead_ids", ())),
            frozenset(found.get("emails", ())),
            frozenset(found.get("phones", ())),
            frozenset(found.get("names", ())),
        )

    def command_fields(self) -> dict[str, Any]:
        """The keys as an `EraseLead` command carries them (`EraseLead(**fields, …)`),
        sorted so every partition's copy of a command reads the same."""
        return {
            "lead_ids": sorted(self.lead_ids, key=str),
            "emails": sorted(self.emails),
            "phones": sorted(self.phones),
            "names": sorted(self.names),
        }

    @classmethod
    def from_command(cls, command: EraseLead) -> Person:
        """The person an `EraseLead` command names."""
        return cls(
            frozenset(command.lead_ids),
            frozenset(command.emails),
            frozenset(command.phones),
            frozenset(command.names),
        )

    def merge(self, other: Person) -> Person:
        return Person(
            self.lead_ids | other.lead_ids,
            self.emails | other.emails,
            self.phones | other.phones,
            self.names | other.names,
        )

    def named_in(self, text: str) -> bool:
        """Does the text mention the person's address, phone or name (as a word)?
        (For the person's own records only: names are not unique.)"""
        if self.mentions(text):
            return True
        folded = text.casefold()
        return any(re.search(rf"\b{re.escape(name)}\b", folded) for name in self.names)


def person_for(subject: str, region: str) -> Person:
    """What the operator typed: a lead id, an e-mail address or a phone number
    (national numbers read in `region`)."""
    subject = subject.strip()
    try:
        return Person(lead_ids=frozenset({uuid.UUID(subject)}))
    except ValueError:
        pass
    if "@" in subject:
        return Person(emails=frozenset({subject.casefold()}))
    phone = normalise_phone(subject, region)
    return Person(phones=frozenset({phone})) if phone else Person()


def _phone_spellings(e164: str) -> tuple[str, list[str]]:
    """The national significant number and the digit strings the number is
    written as (`+49305551234`, `0049305551234`, `+490305551234`, `0305551234`);
    nothing for a value that is not a valid number."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "", []
    if not phonenumbers.is_valid_number(number):
        return "", []
    code = str(number.country_code)
    significant = phonenumbers.national_significant_number(number)
    national = re.sub(
        r"\D", "", phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    )
    spellings = {f"+{code}{significant}", f"00{code}{significant}", f"+{code}0{significant}"}
    return significant, sorted(spellings | {national})


def texts_of(raw: bytes | str) -> Iterator[str]:
    """The message as text, then every base64 original it carries, decoded."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    yield text
    for match in _ORIGINAL.finditer(text):
        try:
            decoded = base64.b64decode(match.group(1), validate=True)
        except (binascii.Error, ValueError):
            continue
        yield decoded.decode("utf-8", errors="replace")


def as_document(value: Any) -> Any:
    """A JSON text (or bytes) as its document; anything else (also text that is
    not JSON) as it is."""
    if isinstance(value, bytes | str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _lead_of(document: dict[str, Any]) -> uuid.UUID | None:
    lead = document.get("lead_id", document.get("lead"))
    if not isinstance(lead, str):
        return None
    try:
        return uuid.UUID(lead)
    except ValueError:
        return None


def _identity_fields(document: Any) -> Iterator[tuple[str, str]]:
    """(`email` | `phone` | `name`, value) for each contact field of the lead
    itself (in `contact`, `payload` or at the top: not its owner's address) and
    each identity key (`email:…`, `phone:…`) anywhere, whatever field holds it
    (`identity`, `key`, `person`, or one added later)."""

    def walk(node: Any, parent: str | None) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and parent in _CONTACT_PARENTS:
                    if key in {"email", "phone"}:
                        yield key, value
                    elif key in {"first_name", "last_name"}:
                        yield "name", value
                yield from walk(value, key)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, parent)
        elif isinstance(node, str) and (identity := _IDENTITY_KEY.fullmatch(node)):
            yield identity.group(1), identity.group(2)

    yield from walk(document, None)


def contacts_in(document: Any) -> Person:
    """The e-mail addresses, E.164 phone numbers and names a JSON document holds
    for its lead (contact fields, identity keys, activity e-mail/phone), for
    resolving a subject to everything we know about the person. A phone not in
    E.164 (as a channel typed it) is left out: the same number is on the lead's
    captured contact, normalised."""
    emails: set[str] = set()
    phones: set[str] = set()
    names: set[str] = set()
    for kind, value in _identity_fields(document):
        value = value.strip()
        if kind == "email" and _EMAIL.fullmatch(value):
            emails.add(value.casefold())
        elif kind == "phone" and value.startswith("+") and (e164 := normalise_phone(value, "")):
            phones.add(e164)
        elif kind == "name" and len(value) > 1:
            names.add(value.casefold())
    return Person(emails=frozenset(emails), phones=frozenset(phones), names=frozenset(names))


def redact_document(document: Any, person: Person) -> Any:
    """The person's own record without personal data: personal fields become
    "[erased]" (a contact keeps only its country), and any other text that
    mentions or names the person is erased too. Ids, timestamps, channel and
    outcomes stay."""
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


def redact_person(text: str, person: Person) -> str:
    """A stored string of the person's own record (JSON or not) without their data."""
    parsed = as_document(text)
    if not isinstance(parsed, dict | list):
        return ERASED if person.named_in(text) else text
    return orjson.dumps(redact_document(parsed, person)).decode()


def scrub_document(document: Any, person: Person) -> Any:
    """Someone else's record with only the person's addresses and numbers
    replaced (in every string, and inside a rejection's original bytes): the
    other person's own fields and words stay."""
    if isinstance(document, dict):
        return {
            key: _scrub_original(value, person)
            if key == "original_b64" and isinstance(value, str)
            else scrub_document(value, person)
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [scrub_document(item, person) for item in document]
    if isinstance(document, str):
        return person.scrub(document)
    if isinstance(document, bytes):
        try:
            return person.scrub(document.decode()).encode()
        except UnicodeDecodeError:
            return document
    return document


def _scrub_original(encoded: str, person: Person) -> str:
    try:
        original = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, ValueError):
        return encoded
    scrubbed = person.scrub(original)
    return encoded if scrubbed == original else base64.b64encode(scrubbed.encode()).decode()


def scrub_text(text: str, person: Person) -> str:
    """A stored string of someone else's record without the person's keys."""
    parsed = as_document(text)
    if not isinstance(parsed, dict | list):
        return person.scrub(text)
    return orjson.dumps(scrub_document(parsed, person)).decode()


def forget_entry(key: bytes, value: Any, person: Person) -> Any | None:
    """A table entry after the erasure of `person`: None (delete it) when it is
    theirs – its key names their lead or key, or its value is their record;
    a list of several people's items (a company's people in `identity-lead`, a
    pull queue's waiting leads) keeps the others' items; someone else's entry
    that only mentions the person keeps everything but their keys."""
    if person.owns_key(key):
        return None
    if isinstance(value, list):
        kept = [scrub_document(item, person) for item in value if not person.owns(item)]
        return kept or None
    if person.owns(value):
        return None
    return scrub_document(value, person)


@dataclass
class TableScan:
    """The latest value per key of one changelog partition, read from the log, and
    whether any record of it (also an overwritten or deleted one) is or mentions
    `person`."""

    person: Person = field(default_factory=Person)
    live: dict[bytes, bytes] = field(default_factory=dict)
    mentions_person: bool = False

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if not self.mentions_person:
            self.mentions_person = self.person.owns_key(key) or self.person.found_in(value)
        if value is None:
            self.live.pop(key, None)
        else:
            self.live[key] = value

    def personal(self, person: Person) -> list[bytes]:
        """Keys whose entry is the person's or mentions them (see `forget_entry`)."""
        return [k for k, v in self.live.items() if person.owns_key(k) or person.found_in(v)]
