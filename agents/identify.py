"""Identify: accepted inquiries (keyed by the person) are resolved to a lead.

The table identity → lead_id is owned by the partition of the identity key
(`leads.identify` is keyed by it) and durable through its changelog, so it
is right with many workers; the lead then goes on keyed by `lead_id`. The
table is keyed by a hash of the identity (`pseudonym`), never the address.
"""

from __future__ import annotations

import uuid

import faust

from pipeline.app import Stage
from pipeline.identity import pseudonym, resolve_identity
from schemas.lead import InquiryAccepted, LeadCaptured


def register(stage: Stage) -> None:
    json: faust.Schema = faust.Schema(key_serializer="json", value_serializer="json")
    leads = stage.app.Table(
        "identity-lead", partitions=stage.topics.identify.partitions, schema=json
    )

    def identify(accepted: InquiryAccepted) -> LeadCaptured:
        key = pseudonym(accepted.identity)
        known = leads.get(key)
        if known is None:
            leads[key] = str(accepted.lead_id)
        return resolve_identity(accepted, uuid.UUID(known) if known else None)

    stage.decoding_agent(stage.topics.identify, "identify", identify)
