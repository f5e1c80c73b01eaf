"""Identity resolution (seed 002 §6.2.3, §6.3): a person already known gets no
second lead; their new inquiry is attached to the existing one.

The identity key is the normalised e-mail address, else the E.164 phone
number. The agent keeps identity → lead_id in a table owned by the partition
of the identity key; this module decides, knowing nothing of Kafka.
"""

from __future__ import annotations

import hashlib
import uuid

from schemas.envelope import derive_id
from schemas.inquiry import Contact
from schemas.lead import InquiryAccepted, LeadCaptured


def identity_key(contact: Contact) -> str | None:
    """`email:<address>` (case-folded) or `phone:<E.164>`; None with neither."""
    if contact.email:
        return "email:" + contact.email.casefold()
    if contact.phone:
        return "phone:" + contact.phone
    return None


def pseudonym(identity: str) -> str:
    """The identity as the table keys it: a hash, so the table's changelog (and the
    tombstone an erasure leaves there until compaction) never spells the address."""
    return hashlib.sha256(f"leadflow-identity\x1f{identity}".encode()).hexdigest()


def resolve_identity(accepted: InquiryAccepted, known: uuid.UUID | None) -> LeadCaptured:
    """The inquiry as a lead: the person's existing lead if `known`, else its own.

    Deterministic: a redelivered inquiry finds itself (or the same earlier
    lead) in the table and is emitted with the same ids again.
    """
    lead_id = known or accepted.lead_id
    return LeadCaptured(
        event_id=derive_id("LeadCaptured", accepted.event_id),
        lead_id=lead_id,
        trace_id=accepted.trace_id,
        source=accepted.source,
        occurred_at=accepted.occurred_at,
        emitted_at=accepted.emitted_at,
        payload=accepted.payload,
        merged=lead_id != accepted.lead_id,
    )
