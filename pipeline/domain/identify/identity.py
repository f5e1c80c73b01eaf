"""Identity resolution (seed 002 §6.2.3, §6.3): a person already known gets no
second lead; their new inquiry is attached to the existing one.

A person is known by up to three identity keys, consulted in this order: the
normalised e-mail address, the E.164 phone number, and their company (where the
same full name decides, unless the two records carry a different e-mail address
or phone: then they are two people). Each key is owned by one partition of
`leads.identify`, so an inquiry walks from key to key: at each it either finds
the person's lead (and stops) or claims the key for its own new lead and goes
on to the next. This module decides each step, knowing nothing of Kafka.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NotRequired, TypedDict, cast

import orjson
from rapidfuzz import fuzz

from pipeline.domain.contact import normalise_phone
from pipeline.domain.messages import Position, reject
from schemas.envelope import EventBase, derive_id
from schemas.inputs import Activity
from schemas.inquiry import Contact
from schemas.lead import (
    ActivityRecorded,
    ActivityUnattached,
    CorrectIdentity,
    Correction,
    IdentityClaimed,
    IdentityCorrected,
    InquiryAccepted,
    LeadCaptured,
)
from schemas.rejected import MessageRejected, Reason

COMPANY = "company:"
LEGAL_FORMS = re.compile(
    r"\b(gmbh|mbh|ag|kg|kgaa|ohg|gbr|ug|se|ev|e v|co|ltd|limited|inc|llc|plc|sa|sarl|bv|nv"
    r"|und|and)\b"
)
"""Legal forms, and "und"/"and" ("&" and "+" fold to a space): not part of the name."""
TRANSLITERATE = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
MAX_KEYS_OF_A_KIND = 5
"""E-mail keys, and phone keys, kept per person at a company. More are not stored:
one of that kind is known already, so a key not kept only makes a later name
match more cautious (it conflicts), never looser."""

KeyKind = Literal["email", "phone", "company"]


class KnownPerson(TypedDict):
    """A person known at a company: folded full name, lead, and the e-mail and phone
    keys seen with them (`keys`, since IdentityClaimed 1.1; an entry written before
    has only `person`, their first key)."""

    name: str
    lead: str
    person: str
    keys: NotRequired[list[str]]


Stored = dict[str, str] | list[KnownPerson]
"""A table value: `{lead, key}` for an e-mail or phone key, or the people known at a
company. The identity keys in the value (`key`, `person`, `keys`) are what lets an
erasure find the entry: the table is keyed by its `pseudonym`."""


def fold(text: str) -> str:
    """Lower case, German umlauts spelled out, accents and punctuation gone."""
    text = text.casefold().translate(TRANSLITERATE)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def person_name(contact: Contact) -> str | None:
    name = fold(" ".join(p for p in (contact.first_name, contact.last_name) if p))
    return name or None


def company_key(contact: Contact) -> str | None:
    """`company:<name without legal form>` when the contact names a company and a person."""
    if not contact.company or person_name(contact) is None:
        return None
    company = " ".join(LEGAL_FORMS.sub(" ", fold(contact.company)).split())
    return COMPANY + company if company else None


def identity_key(contact: Contact) -> str | None:
    """`email:<address>` (case-folded) or `phone:<E.164>`; None with neither."""
    if contact.email:
        return "email:" + contact.email.casefold()
    if contact.phone:
        return "phone:" + contact.phone
    return None


def key_kind(key: str) -> KeyKind:
    kind = key.split(":", 1)[0]
    assert kind in ("email", "phone", "company"), key
    return cast(KeyKind, kind)


def identity_keys(contact: Contact) -> list[str]:
    """Every key the person can be found by, in the order they are consulted."""
    keys = [
        "email:" + contact.email.casefold() if contact.email else None,
        "phone:" + contact.phone if contact.phone else None,
        company_key(contact),
    ]
    return [key for key in keys if key]


def person_keys(contact: Contact) -> list[str]:
    """The e-mail and phone keys of a contact: what tells two namesakes apart."""
    return [key for key in identity_keys(contact) if not key.startswith(COMPANY)]


def known_keys(person: KnownPerson) -> list[str]:
    return person.get("keys") or ([person["person"]] if person["person"] else [])


def name_score(name: str, other: str) -> float:
    """How alike two folded full names are, 0-100: every part but the last (first
    and middle names) must be the same; the last names are compared by ratio."""
    mine, theirs = name.split(), other.split()
    if not mine or len(mine) != len(theirs) or mine[:-1] != theirs[:-1]:
        return 0.0
    return round(float(fuzz.ratio(mine[-1], theirs[-1])), 1)


def conflicting(known: list[str], mine: list[str]) -> bool:
    """Do two records carry a different e-mail address, or a different phone
    (where both have one of that kind)? Then they are two people."""
    for kind in ("email:", "phone:"):
        theirs = {key for key in known if key.startswith(kind)}
        ours = {key for key in mine if key.startswith(kind)}
        if theirs and ours - theirs:
            return True
    return False


@dataclass(frozen=True)
class Match:
    """The lead a key belongs to, and for a company key how alike the names are."""

    lead: uuid.UUID
    score: float | None = None


def find_lead(
    key: str,
    stored: Stored | None,
    threshold: float,
    name: str | None = None,
    keys: list[str] | None = None,
    own: uuid.UUID | None = None,
) -> Match | None:
    """The lead a key belongs to: exact for e-mail and phone. At a company: the one
    person whose name scores at least `threshold` (see `name_score`) and whose
    e-mail and phone do not conflict with `keys`; none when namesakes are known
    there (the name alone cannot tell them apart). `own`: the inquiry's own lead,
    found again when a step is redelivered."""
    if stored is None:
        return None
    if isinstance(stored, dict):
        return Match(uuid.UUID(stored["lead"]))
    if any(person["lead"] == str(own) for person in stored):
        return Match(cast(uuid.UUID, own))
    if name is None:
        return None
    scored = [(name_score(name, person["name"]), person) for person in stored]
    alike = [(score, person) for score, person in scored if score >= threshold]
    if len(alike) != 1:
        return None
    score, person = alike[0]
    if conflicting(known_keys(person), keys or []):
        return None
    return Match(uuid.UUID(person["lead"]), score)


def with_keys(person: KnownPerson, keys: list[str]) -> KnownPerson:
    """The person with more of their e-mail and phone keys (MAX_KEYS_OF_A_KIND each)."""
    kept = known_keys(person)
    for key in keys:
        kind = key.split(":", 1)[0] + ":"
        if key not in kept and sum(k.startswith(kind) for k in kept) < MAX_KEYS_OF_A_KIND:
            kept = [*kept, key]
    return {**person, "keys": kept}


def claimed(stored: Stored | None, claim: IdentityClaimed) -> Stored | None:
    """The table value after `claim`; None when nothing changes.

    A key stays with the lead that claimed it first, except that a claim made
    for an inquiry's own lead during its walk gives way to the lead the walk
    found later (`replaces`). A correction by an operator (`moved_from`) moves
    the key from that lead to the claim's; at a company it moves the person's
    e-mail and phone keys, so the person who stays there keeps their entry.
    """
    lead = str(claim.lead_id)
    gives_way = claim.moved_from or claim.replaces
    replaces = str(gives_way) if gives_way else None
    if not claim.identity.startswith(COMPANY):
        owner = stored["lead"] if isinstance(stored, dict) else None
        if owner is None or (owner == replaces and owner != lead):
            return {"lead": lead, "key": claim.identity}
        return None
    people = list(stored) if isinstance(stored, list) else []
    keys = claim.keys or ([claim.person] if claim.person else [])
    name = claim.name or ""
    if claim.moved_from is None:
        kept = [p for p in people if p["lead"] != replaces]
    else:
        kept = [p for p in (_moved_off(p, replaces, name, keys) for p in people) if p]
    mine = next((i for i, p in enumerate(kept) if p["lead"] == lead and p["name"] == name), None)
    if mine is None:
        mine = next((i for i, p in enumerate(kept) if p["lead"] == lead), None)
    if mine is None:
        kept.append(with_keys({"name": name, "lead": lead, "person": claim.person or ""}, keys))
    else:
        kept[mine] = with_keys(kept[mine], keys)
    return kept if kept != people else None


def _moved_off(
    person: KnownPerson, lead: str | None, name: str, keys: list[str]
) -> KnownPerson | None:
    """A person of the lead a correction moves someone off: without the moving
    person's keys, or gone when the entry was theirs (their name, no other key)."""
    if person["lead"] != lead:
        return person
    left = [key for key in known_keys(person) if key not in keys]
    if not left and person["name"] == name:
        return None
    return {**person, "person": left[0] if left else "", "keys": left}


def pseudonym(identity: str) -> str:
    """The identity key as the tables key it: a hash, so neither a changelog nor the
    tombstone an erasure leaves there spells an address."""
    return hashlib.sha256(f"leadflow-identity\x1f{identity}".encode()).hexdigest()


@dataclass(frozen=True)
class IdentityStep:
    """What one step of the walk decides: go on, or the lead (and what to record)."""

    next_hop: InquiryAccepted | None = None
    captured: LeadCaptured | None = None
    claims: list[IdentityClaimed] = field(default_factory=list)

    def events(self) -> list[EventBase]:
        return [e for e in (self.next_hop, self.captured) if e is not None] + [*self.claims]


def resolve_identity(
    accepted: InquiryAccepted, found: Match | None, activities_wait: bool = False
) -> IdentityStep:
    """One step of the walk at the partition of `accepted.identity`.

    `found` is the lead this key already belongs to. The inquiry's own lead
    found there means a redelivered step: it goes on as it did the first time,
    so every step is deterministic and a redelivery emits the same events.
    `activities_wait`: an unknown person's activities are kept at this key.
    The person found by company learns the inquiry's e-mail and phone (a claim
    of the company key), so a namesake with another address is told apart later.
    """
    own = accepted.lead_id
    if found is not None and found.lead != own:
        return IdentityStep(
            captured=captured_as(accepted, found),
            claims=[
                claim(accepted, key, found.lead)
                for key in accepted.all_keys()
                if key != accepted.identity or key.startswith(COMPANY)
            ],
        )
    if accepted.pending:
        hop = accepted.model_copy(
            update={
                "event_id": derive_id("InquiryAccepted", accepted.trace_id, accepted.pending[0]),
                "identity": accepted.pending[0],
                "pending": accepted.pending[1:],
                "visited": [*accepted.visited, accepted.identity],
                "activities_at": [
                    *(accepted.activities_at or []),
                    *([accepted.identity] if activities_wait else []),
                ],
            }
        )
        return IdentityStep(next_hop=hop)
    # the walk ends with the inquiry's own lead: earlier keys where activities
    # waited are confirmed, which hands those activities to the lead (the claims
    # themselves were stored on the way)
    confirmed = [
        claim(accepted, key, own)
        for key in accepted.visited
        if accepted.activities_at is None or key in accepted.activities_at
    ]
    return IdentityStep(captured=captured_as(accepted, Match(own)), claims=confirmed)


def own_claim(accepted: InquiryAccepted) -> IdentityClaimed:
    """The current key, claimed for the inquiry's own lead while the walk goes on."""
    return claim(accepted, accepted.identity, accepted.lead_id)


def claim(accepted: InquiryAccepted, key: str, lead_id: uuid.UUID) -> IdentityClaimed:
    at_company = key.startswith(COMPANY)
    return IdentityClaimed(
        event_id=derive_id("IdentityClaimed", accepted.trace_id, key),
        identity=key,
        lead_id=lead_id,
        name=person_name(accepted.payload.contact) if at_company else None,
        person=accepted.all_keys()[0] if at_company else None,
        keys=person_keys(accepted.payload.contact) if at_company else [],
        replaces=accepted.lead_id
        if key in accepted.visited and lead_id != accepted.lead_id
        else None,
        occurred_at=accepted.occurred_at,
        emitted_at=accepted.emitted_at,
    )


def captured_as(accepted: InquiryAccepted, found: Match) -> LeadCaptured:
    merged = found.lead != accepted.lead_id
    return LeadCaptured(
        event_id=derive_id("LeadCaptured", accepted.trace_id),
        lead_id=found.lead,
        trace_id=accepted.trace_id,
        source=accepted.source,
        occurred_at=accepted.occurred_at,
        emitted_at=accepted.emitted_at,
        payload=accepted.payload,
        merged=merged,
        matched_on=key_kind(accepted.identity) if merged else None,
        match_score=found.score if merged else None,
    )


def split_lead_id(trace_id: uuid.UUID, left: uuid.UUID) -> uuid.UUID:
    """The lead an inquiry becomes when an operator splits it off lead `left`."""
    return derive_id("lead", "split", trace_id, left)


def correct_identity(command: CorrectIdentity, now: datetime) -> list[EventBase]:
    """An operator's split or merge: the identity keys move (claims with
    `moved_from`, applied at each key's partition), a split-off inquiry is
    captured again as its own lead, and each lead concerned records what happened."""
    if command.action == "split":
        [inquiry] = command.captures
        lead = split_lead_id(inquiry.trace_id, command.lead)
        moved = moved_claims(command, [inquiry], lead, command.lead, now)
        again = LeadCaptured(
            event_id=derive_id("LeadCaptured", inquiry.trace_id, lead),
            lead_id=lead,
            trace_id=inquiry.trace_id,
            source=inquiry.source,
            occurred_at=inquiry.occurred_at,
            emitted_at=now,
            payload=inquiry.payload,
        )
        inquiry_id = inquiry.payload.inquiry_id
        return [
            *moved,
            again,
            corrected(command, command.lead, "split_off", lead, len(moved), now, inquiry_id),
            corrected(command, lead, "split_from", command.lead, len(moved), now, inquiry_id),
        ]
    other = cast(uuid.UUID, command.other_lead)
    moved = moved_claims(command, command.captures, command.lead, other, now)
    return [
        *moved,
        corrected(command, command.lead, "merged_in", other, len(moved), now),
        corrected(command, other, "merged_into", command.lead, len(moved), now),
    ]


def moved_claims(
    command: CorrectIdentity,
    captures: list[LeadCaptured],
    lead: uuid.UUID,
    moved_from: uuid.UUID,
    now: datetime,
) -> list[IdentityClaimed]:
    """Every identity key of the captured inquiries, moved from one lead to another
    (at a company once per name: the keys of that person's inquiries together)."""
    claims: dict[tuple[str, str | None], IdentityClaimed] = {}
    for capture in captures:
        contact = capture.payload.contact
        name = person_name(contact)
        for key in identity_keys(contact):
            at_company = key.startswith(COMPANY)
            slot = (key, name if at_company else None)
            earlier = claims.get(slot)
            keys = [*(earlier.keys if earlier else []), *person_keys(contact)] if at_company else []
            keys = list(dict.fromkeys(keys))
            claims[slot] = IdentityClaimed(
                event_id=derive_id("IdentityClaimed", command.event_id, key, slot[1]),
                identity=key,
                lead_id=lead,
                name=slot[1],
                person=keys[0] if keys else None,
                keys=keys,
                moved_from=moved_from,
                occurred_at=now,
                emitted_at=now,
            )
    return list(claims.values())


def corrected(
    command: CorrectIdentity,
    lead: uuid.UUID,
    action: Literal["split_off", "split_from", "merged_in", "merged_into"],
    other: uuid.UUID,
    keys: int,
    now: datetime,
    inquiry_id: str | None = None,
) -> IdentityCorrected:
    return IdentityCorrected(
        event_id=derive_id("IdentityCorrected", command.event_id, lead),
        lead_id=lead,
        command_id=command.event_id,
        occurred_at=now,
        emitted_at=now,
        payload=Correction(action=action, other_lead=other, inquiry_id=inquiry_id, keys=keys),
    )


def activity_identity(activity: Activity, region: str) -> str | None:
    """The key an activity without a lead id is resolved by: e-mail, else phone."""
    if activity.email:
        return "email:" + activity.email.strip().casefold()
    phone = normalise_phone(activity.phone, region) if activity.phone else None
    return "phone:" + phone if phone else None


def attached(activity: Activity, lead_id: uuid.UUID, now: datetime) -> ActivityRecorded:
    return ActivityRecorded(
        event_id=derive_id("ActivityRecorded", activity.activity_id),
        lead_id=lead_id,
        occurred_at=activity.occurred_at,
        emitted_at=now,
        payload=activity,
    )


MAX_WAITING_ACTIVITIES = 200
"""Activities kept per unknown person; more is a tracking loop or an attack."""


def route_activity(
    activity: Activity, raw: bytes, at: Position, region: str, now: datetime
) -> ActivityRecorded | ActivityUnattached | MessageRejected:
    """An activity goes to its lead, to its person's identity key, or – with no way
    to tell who did it – to `leads.rejected`."""
    if activity.lead_id is not None:
        return attached(activity, activity.lead_id, now)
    identity = activity_identity(activity, region)
    if identity is None:
        unknown = Reason(
            code="activity_without_person",
            message="An activity needs a lead_id, an e-mail address or a valid phone number.",
        )
        return reject(raw, at, "attach-activity", [unknown])
    return ActivityUnattached(
        event_id=derive_id("ActivityUnattached", activity.activity_id),
        identity=identity,
        occurred_at=activity.occurred_at,
        emitted_at=now,
        payload=activity,
    )


def keep_waiting(
    waiting: list[Activity], activity: Activity, at: Position
) -> list[Activity] | MessageRejected:
    """The activities kept for an unknown person, with this one (once)."""
    if any(kept.activity_id == activity.activity_id for kept in waiting):
        return waiting
    if len(waiting) >= MAX_WAITING_ACTIVITIES:
        full = Reason(
            code="too_many_unattached_activities",
            message=f"{MAX_WAITING_ACTIVITIES} activities already wait for this unknown person.",
        )
        return reject(activity.model_dump_json().encode(), at, "identify-activity", [full])
    return [*waiting, activity]


@dataclass
class IdentityBook:
    """Who is who, for the identity keys of one partition.

    `leads` maps a key's pseudonym to its Stored value and `waiting` to the
    activities (JSON) kept for an unknown person; the worker passes its Faust
    tables (owned by the key's partition), a test passes dicts.
    """

    leads: MutableMapping[str, Stored]
    waiting: MutableMapping[str, list[str]]
    name_match: float
    waiting_max_bytes: int = 900_000
    """The waiting activities of one key are one table value, so one changelog message:
    it must stay below what the broker takes (`LEADFLOW_MAX_MESSAGE_BYTES`)."""

    def identify(self, accepted: InquiryAccepted) -> list[EventBase]:
        """One step of an inquiry's walk (see `resolve_identity`)."""
        contact = accepted.payload.contact
        found = find_lead(
            accepted.identity,
            self.stored(accepted.identity),
            self.name_match,
            person_name(contact),
            person_keys(contact),
            accepted.lead_id,
        )
        step = resolve_identity(accepted, found, pseudonym(accepted.identity) in self.waiting)
        if found is not None and found.lead != accepted.lead_id:
            return step.events()
        self.store(own_claim(accepted))
        if accepted.pending:  # the key is the inquiry's own only if the walk finds no one
            return step.events()
        return [*self.hand_over(accepted.identity, accepted.emitted_at), *step.events()]

    def record(self, claim: IdentityClaimed, now: datetime) -> list[EventBase]:
        """Store a settled claim; activities that waited for the key go to its lead now."""
        self.store(claim)
        return self.hand_over(claim.identity, now)

    def stored(self, key: str) -> Stored | None:
        return self.leads.get(pseudonym(key))

    def store(self, claim: IdentityClaimed) -> None:
        changed = claimed(self.stored(claim.identity), claim)
        if changed is not None:
            self.leads[pseudonym(claim.identity)] = changed

    def hand_over(self, key: str, now: datetime) -> list[EventBase]:
        found = find_lead(key, self.stored(key), self.name_match)
        if found is None or pseudonym(key) not in self.waiting:
            return []
        kept = [Activity.model_validate_json(a) for a in self.waiting.pop(pseudonym(key))]
        return [attached(activity, found.lead, now) for activity in kept]

    def identify_activity(
        self, unattached: ActivityUnattached, at: Position, now: datetime
    ) -> ActivityRecorded | MessageRejected | None:
        """The activity for its person's lead, or kept until a lead claims the key."""
        activity, key = unattached.payload, unattached.identity
        found = find_lead(key, self.stored(key), self.name_match)
        if found is not None:
            return attached(activity, found.lead, now)
        kept = [Activity.model_validate_json(a) for a in self.waiting.get(pseudonym(key), [])]
        now_waiting = keep_waiting(kept, activity, at)
        if isinstance(now_waiting, MessageRejected):
            return now_waiting
        encoded = [a.model_dump_json() for a in now_waiting]
        if len(orjson.dumps(encoded)) > self.waiting_max_bytes:  # the table's changelog record
            full = Reason(
                code="unattached_activities_too_large",
                message=f"The activities waiting for this unknown person would take more "
                f"than {self.waiting_max_bytes} bytes.",
            )
            return reject(activity.model_dump_json().encode(), at, "identify-activity", [full])
        self.waiting[pseudonym(key)] = encoded
        return None
