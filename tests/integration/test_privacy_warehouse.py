"""Erasure and export in the real ClickHouse engine (chdb), over every table with a
lead_id column – including one this code has never heard of."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from pipeline.erasure import erase_in_warehouse, export_person, resolve_person
from pipeline.privacy import person_for
from pipeline.settings import load_settings
from pipeline.warehouse import EVENTS_TABLE, Warehouse, open_warehouse

ANNA = "anna.schmidt@firma.de"
LEAD, MERGED, OTHER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
TRACE = uuid.uuid4()


def row(
    event_type: str, lead: uuid.UUID | None, payload: object, **extra: object
) -> dict[str, object]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": "1.1",
        "lead_id": str(lead) if lead else None,
        "trace_id": str(extra.pop("trace", uuid.uuid4())),
        "occurred_at": "2026-11-23 10:00:00.000",
        "emitted_at": "2026-11-23 10:00:00.000",
        "channel": "web_form",
        "campaign": "spring",
        "utm_source": "",
        "utm_medium": "",
        "utm_campaign": "",
        "topic": "leads.x",
        "partition": 0,
        "offset": 1,
        "payload": orjson.dumps(payload).decode(),
    }


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    opened = open_warehouse(load_settings(state_dir=tmp_path, warehouse_dir=tmp_path / "wh"))
    contact = {"email": ANNA, "phone": "+49301234567", "last_name": "Schmidt", "country": "DE"}
    original = base64.b64encode(orjson.dumps({"contact": {"email": ANNA}})).decode()
    opened.insert(
        EVENTS_TABLE,
        [
            # the inquiry that was merged into LEAD: its own provisional lead, same trace
            row("InquiryReceived", MERGED, {"contact": {"email": ANNA.upper()}}, trace=TRACE),
            row("LeadCaptured", LEAD, {"payload": {"contact": contact}}, trace=TRACE),
            row(
                "LeadQualified",
                LEAD,
                {"payload": {"status": "sql", "profile": {"contact": contact}}},
            ),
            row(
                "MessageRejected", None, {"payload": {"stage": "capture", "original_b64": original}}
            ),
            row("LeadCaptured", OTHER, {"payload": {"contact": {"email": "paul@firma.de"}}}),
        ],
    )
    opened.execute(
        "CREATE TABLE leadflow.lead_notes (lead_id Nullable(UUID), note String, n UInt32) "
        "ENGINE = MergeTree ORDER BY n"
    )
    opened.insert(
        "leadflow.lead_notes",
        [
            {"lead_id": str(LEAD), "note": "called Frau Schmidt", "n": 1},
            {"lead_id": str(OTHER), "note": "call paul@firma.de back", "n": 2},
        ],
    )
    try:
        yield opened
    finally:
        opened.close()


def test_a_subject_resolves_to_all_its_leads_addresses_and_phones(warehouse: Warehouse) -> None:
    person = resolve_person(warehouse, person_for(ANNA))
    assert person.lead_ids == {LEAD, MERGED}
    assert person.emails == {ANNA} and person.phones == {"+49301234567"}
    assert resolve_person(warehouse, person_for(str(LEAD))) == person


def test_export_lists_every_event_of_the_person(warehouse: Warehouse) -> None:
    exported = export_person(warehouse, resolve_person(warehouse, person_for(ANNA)))
    assert sorted(e["event_type"] for e in exported["events"]) == [
        "InquiryReceived",
        "LeadCaptured",
        "LeadQualified",
        "MessageRejected",
    ]


def test_erasure_strips_every_table_with_a_lead_id_and_keeps_the_rows(
    warehouse: Warehouse,
) -> None:
    person = resolve_person(warehouse, person_for(ANNA))
    before = warehouse.query(f"SELECT event_type, count() AS n FROM {EVENTS_TABLE} GROUP BY 1")

    assert erase_in_warehouse(warehouse, person) == 5  # 4 events, 1 note

    events = warehouse.query(f"SELECT * FROM {EVENTS_TABLE}")
    notes = warehouse.query("SELECT * FROM leadflow.lead_notes ORDER BY n")
    text = orjson.dumps([events, notes]).decode().casefold()
    assert "anna.schmidt" not in text and "1234567" not in text and "frau schmidt" not in text
    assert "paul@firma.de" in text  # nobody else's data went
    after = warehouse.query(f"SELECT event_type, count() AS n FROM {EVENTS_TABLE} GROUP BY 1")
    assert sorted(after, key=str) == sorted(before, key=str)
    qualified = next(e for e in events if e["event_type"] == "LeadQualified")
    assert orjson.loads(qualified["payload"])["payload"]["status"] == "sql"
    assert [n["lead_id"] for n in notes] == [str(LEAD), str(OTHER)]
    assert erase_in_warehouse(warehouse, person_for(ANNA)) == 0  # nothing left to find
