"""Privacy commands and their audit trail (GDPR Art. 17)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from schemas.envelope import EventBase


class EraseLead(EventBase):
    """Command: remove a person's personal data everywhere it is stored.

    It names the person's e-mail addresses and phone numbers, so it is itself
    personal data: `privacy.erasure` is truncated once the command is done, and
    the warehouse never stores it. `leadflow privacy erase` sends the `tables`
    phase to every partition (each owns its slice of the worker's tables), waits
    for all of them, then sends the `stores` phase (topics, warehouse) once.
    """

    event_type: Literal["EraseLead"] = "EraseLead"
    subject: str = Field(description="What the operator asked for: a lead id or an e-mail.")
    lead_ids: list[uuid.UUID] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list, description="Case-folded addresses.")
    phones: list[str] = Field(default_factory=list, description="E.164 numbers.")
    names: list[str] = Field(
        default_factory=list, description="Case-folded first and last names (the lead's rows only)."
    )
    phase: Literal["tables", "stores"] = Field(
        description="tables: this partition's slice of every worker table (one copy per "
        "partition); stores: then, once, the topics and the warehouse (partition 0)."
    )


class LeadErased(EventBase):
    """Audit record of one partition's share of an erasure: ids and counts, no personal data."""

    event_type: Literal["LeadErased"] = "LeadErased"
    erasure_id: uuid.UUID = Field(description="The EraseLead command's event_id.")
    phase: Literal["tables", "stores"]
    partition: int
    lead_ids: list[uuid.UUID] = Field(default_factory=list)
    table_entries: int = Field(default=0, description="Table entries removed or rewritten.")
    topic_partitions: int = Field(default=0, description="Topic partitions truncated.")
    warehouse_rows: int = Field(default=0, description="Warehouse rows stripped of personal data.")
    complete: bool = Field(
        description="False when something still held personal data (see the worker's log)."
    )

    def key(self) -> bytes | None:
        return str(self.erasure_id).encode()
