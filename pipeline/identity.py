"""Identity resolution (seed 002 §6.2.3, §6.3): a person already known gets no
second lead; their new inquiry is attached to the existing one.

A person is known by up to three identity keys, consulted in this order: the
normalised e-mail address, the E.164 phone number, and their company (where a
fuzzy match on the name decides). Each key is owned by one partition of
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
from typing import Literal, cast

from rapidfuzz import fuzz

from pipeline.messages import Position, reject
from pipeline.plausibility import normalise_phone
from schemas.envelope import EventBase, derive_id
from schemas.inputs import Activity
from schemas.inquiry import Contact
from schemas.lead import (
    ActivityRecorded,
    ActivityUnattached,
    IdentityClaimed,
    InquiryAccepted,
    LeadCaptured,
)
from schemas.rejected import MessageRejected, Reason

COMPANY = "company:"
NAME_MATCH = 90.0
"""How alike (rapidfuzz token-sort ratio, 0-100) two names at one company must be
to be one person, by default: one typo in a short name still matches."""
LEGAL_FORMS = re.compile(
    r"\b(gmbh|mbh|ag|kg|kgaa|ohg|gbr|ug|se|ev|e v|co|ltd|limited|inc|llc|plc|sa|sarl|bv|nv)\b"
)
TRANSLITERATE = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})

KeyKind = Literal["email", "phone", "company"]
Stored = dict[str, str] | list[dict[str, str]]
"""A table value: `{lead, key}` for an e-mail or phone key, or the people known at a
company, `[{name, lead, person}]` (`person`: their e-mail or phone key). The key
in the value is what lets an erasure find the entry: the table is keyed by its
`pseudonym`."""


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


def find_lead(
    key: str, stored: Stored | None, name: str | None, threshold: float
) -> uuid.UUID | None:
    """The lead a key belongs to: exact for e-mail and phone, by the closest name
    at or above `threshold` (0-100) among a company's people."""
    if stored is None:
        return None
    if isinstance(stored, dict):
        return uuid.UUID(stored["lead"])
    if name is None:
        return None
    scored = [(fuzz.token_sort_ratio(name, person["name"]), person["lead"]) for person in stored]
    best = max(scored, default=(0.0, ""))
    return uuid.UUID(best[1]) if best[0] >= threshold else None


def claimed(stored: Stored | None, claim: IdentityClaimed) -> Stored | None:
    """The table value after `claim`; None when nothing changes.

    A key stays with the lead that claimed it first, except that a claim made
    for an inquiry's own lead during its walk gives way to the lead the walk
    found later (`replaces`).
    """
    lead = str(claim.lead_id)
    replaces = str(claim.replaces) if claim.replaces else None
    if not claim.identity.startswith(COMPANY):
        owner = stored["lead"] if isinstance(stored, dict) else None
        if owner is None or (owner == replaces and owner != lead):
            return {"lead": lead, "key": claim.identity}
        return None
    people = list(stored) if isinstance(stored, list) else []
    kept = [p for p in people if p["lead"] != replaces]
    if any(p["lead"] == lead for p in kept):
        return kept if len(kept) != len(people) else None
    return [*kept, {"name": claim.name or "", "lead": lead, "person": claim.person or ""}]


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
    accepted: InquiryAccepted, found: uuid.UUID | None, activities_wait: bool = False
) -> IdentityStep:
    """One step of the walk at the partition of `accepted.identity`.

    `found` is the lead this key already belongs to. The inquiry's own lead
    found there means a redelivered step: it goes on as it did the first time,
    so every step is deterministic and a redelivery emits the same events.
    `activities_wait`: an unknown person's activities are kept at this key.
    """
    own = accepted.lead_id
    if found is not None and found != own:
        return IdentityStep(
            captured=captured_as(accepted, found),
            claims=[
                claim(accepted, key, found)
                for key in accepted.all_keys()
                if key != accepted.identity
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
    return IdentityStep(captured=captured_as(accepted, own), claims=confirmed)


def own_claim(accepted: InquiryAccepted) -> IdentityClaimed:
    """The current key, claimed for the inquiry's own lead while the walk goes on."""
    return claim(accepted, accepted.identity, accepted.lead_id)


def claim(accepted: InquiryAccepted, key: str, lead_id: uuid.UUID) -> IdentityClaimed:
    return IdentityClaimed(
        event_id=derive_id("IdentityClaimed", accepted.trace_id, key),
        identity=key,
        lead_id=lead_id,
        name=person_name(accepted.payload.contact) if key.startswith(COMPANY) else None,
        person=accepted.all_keys()[0] if key.startswith(COMPANY) else None,
        replaces=accepted.lead_id
        if key in accepted.visited and lead_id != accepted.lead_id
        else None,
        occurred_at=accepted.occurred_at,
        emitted_at=accepted.emitted_at,
    )


def captured_as(accepted: InquiryAccepted, lead_id: uuid.UUID) -> LeadCaptured:
    return LeadCaptured(
        event_id=derive_id("LeadCaptured", accepted.trace_id),
        lead_id=lead_id,
        trace_id=accepted.trace_id,
        source=accepted.source,
        occurred_at=accepted.occurred_at,
        emitted_at=accepted.emitted_at,
        payload=accepted.payload,
        merged=lead_id != accepted.lead_id,
        matched_on=key_kind(accepted.identity) if lead_id != accepted.lead_id else None,
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

    def identify(self, accepted: InquiryAccepted) -> list[EventBase]:
        """One step of an inquiry's walk (see `resolve_identity`)."""
        name = person_name(accepted.payload.contact)
        found = find_lead(accepted.identity, self.stored(accepted.identity), name, self.name_match)
        step = resolve_identity(accepted, found, pseudonym(accepted.identity) in self.waiting)
        if found is not None and found != accepted.lead_id:
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
        lead = find_lead(key, self.stored(key), None, self.name_match)
        if lead is None or pseudonym(key) not in self.waiting:
            return []
        kept = [Activity.model_validate_json(a) for a in self.waiting.pop(pseudonym(key))]
        return [attached(activity, lead, now) for activity in kept]

    def identify_activity(
        self, unattached: ActivityUnattached, at: Position, now: datetime
    ) -> ActivityRecorded | MessageRejected | None:
        """The activity for its person's lead, or kept until a lead claims the key."""
        activity, key = unattached.payload, unattached.identity
        lead = find_lead(key, self.stored(key), None, self.name_match)
        if lead is not None:
            return attached(activity, lead, now)
        kept = [Activity.model_validate_json(a) for a in self.waiting.get(pseudonym(key), [])]
        now_waiting = keep_waiting(kept, activity, at)
        if isinstance(now_waiting, MessageRejected):
            return now_waiting
        self.waiting[pseudonym(key)] = [a.model_dump_json() for a in now_waiting]
        return None
