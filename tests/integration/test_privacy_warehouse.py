"""Erasure and export in the real ClickHouse engine (chdb), over every table with a
lead_id column – including one this code has never heard of."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, Warehouse, open_warehouse
from pipeline.adapters.warehouse.erasure import erase_in_warehouse, export_person, resolve_person
from pipeline.config.settings import load_settings
from pipeline.domain.identify.identity import split_lead_id
from pipeline.domain.privacy.person import person_for

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
    person = resolve_person(warehouse, person_for(ANNA, "DE"))
    assert person.lead_ids == {LEAD, MERGED}
    assert person.emails == {ANNA} and person.phones == {"+49301234567"}
    assert resolve_person(warehouse, person_for(str(LEAD), "DE")) == person


def test_export_lists_every_event_of_the_person(warehouse: Warehouse) -> None:
    exported = export_person(warehouse, resolve_person(warehouse, person_for(ANNA, "DE")))
    assert sorted(e["event_type"] for e in exported["events"]) == [
        "InquiryReceived",
        "LeadCaptured",
        "LeadQualified",
        "MessageRejected",
    ]


def test_erasure_strips_every_table_with_a_lead_id_and_keeps_the_rows(
    warehouse: Warehouse,
) -> None:
    person = resolve_person(warehouse, person_for(ANNA, "DE"))
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
    assert erase_in_warehouse(warehouse, person_for(ANNA, "DE")) == 0  # nothing left to find


def test_erasure_reaches_the_report_tables_and_keeps_their_counts(warehouse: Warehouse) -> None:
    """Migration 005's tables: a CRM's lost reason that names her (lead_reasons) loses
    her name and address, the loss still counts; her touch (lead_touches: channel,
    campaign) holds nothing of her and stays as it is; Paul's reason is untouched."""
    lost = "lost: Frau Schmidt (anna.schmidt@firma.de) chose a competitor"
    outcomes = [
        row(
            "OutcomeRecorded",
            lead,
            {"payload": {"outcome": {"outcome": "lost", "reason": reason}, "cycle": 1}},
        )
        for lead, reason in ((LEAD, lost), (OTHER, "budget, says paul@firma.de"))
    ]
    warehouse.insert(EVENTS_TABLE, outcomes)
    touches = "SELECT toString(lead_id) AS lead, channel, campaign FROM leadflow.lead_touches"
    touched = warehouse.query(f"{touches} ORDER BY lead")
    person = resolve_person(warehouse, person_for(ANNA, "DE"))

    erase_in_warehouse(warehouse, person)

    reasons = warehouse.query(
        "SELECT toString(lead_id) AS lead, kind, reason FROM leadflow.lead_reasons FINAL"
    )
    text = orjson.dumps(reasons).decode().casefold()
    assert "anna.schmidt" not in text and "schmidt" not in text
    assert {"lead": str(OTHER), "kind": "lost", "reason": "budget, says paul@firma.de"} in reasons
    [counted] = warehouse.query(
        "SELECT uniqExact(lead_id) AS leads FROM leadflow.lead_reasons WHERE kind = 'lost'"
    )
    assert counted["leads"] == 2  # her loss still counts, once
    assert warehouse.query(f"SELECT DISTINCT * FROM ({touches}) ORDER BY lead") == touched
    assert {"lead": str(LEAD), "channel": "web_form", "campaign": "spring"} in touched


# --- namesakes, a company inside another's name, her name in someone's message ---

SINA = "s.brandt@gut.de"
SINA_LEAD, JENS, KOCH, LUKAS, PAUL, LENA = (uuid.uuid4() for _ in range(6))


def contact(first: str, last: str, company: str, email: str, phone: str) -> dict[str, str]:
    return {
        "first_name": first,
        "last_name": last,
        "company": company,
        "email": email,
        "phone": phone,
        "country": "DE",
    }


def lead_rows(
    lead: uuid.UUID, person: dict[str, str], message: str, company_key: str
) -> list[dict[str, object]]:
    """What the pipeline stores for one lead: the raw inquiry, the company
    identity claim (key, name and the person's key), the captured lead."""
    trace = uuid.uuid4()
    typed = {**person, "phone": "030 " + person["phone"][5:]}
    return [
        row("InquiryReceived", lead, {"contact": typed, "message": message}, trace=trace),
        row(
            "IdentityClaimed",
            lead,
            {
                "identity": company_key,
                "lead_id": str(lead),
                "name": f"{person['first_name']} {person['last_name']}".casefold(),
                "person": "email:" + person["email"],
            },
            trace=trace,
        ),
        row(
            "LeadCaptured",
            lead,
            {"lead_id": str(lead), "payload": {"contact": person, "message": message}},
            trace=trace,
        ),
    ]


@pytest.fixture
def company(tmp_path: Path) -> Iterator[Warehouse]:
    opened = open_warehouse(load_settings(state_dir=tmp_path, warehouse_dir=tmp_path / "wh"))
    people = [
        (SINA_LEAD, contact("Sina", "Brandt", "Gut GmbH", SINA, "+49305551234"), "Hallo", "gut"),
        (  # same last name, her company, his address ends in hers
            JENS,
            contact("Jens", "Brandt", "Gut GmbH", "jens.brandt@gut.de", "+49305559876"),
            "Bitte Angebot",
            "gut",
        ),
        (  # her first name, a company whose name holds hers
            KOCH,
            contact(
                "Sina",
                "Koch",
                "Gutenberg Druck GmbH",
                "sina.koch@gutenberg-druck.de",
                "+49305550001",
            ),
            "Angebot für Sina Koch",
            "gutenberg druck",
        ),
        (  # "gut" and her name in someone else's message; a phone that starts with hers
            LUKAS,
            contact("Lukas", "Meyer", "Weber AG", "lukas@weber.de", "+493055512348"),
            "Guten Tag, wir sind gut aufgestellt. Frau Brandt von Gut GmbH empfahl Sie.",
            "weber",
        ),
        (  # the same first letter and last letters of her address
            LENA,
            contact("Lena", "Sander", "Sand KG", "s.brandt@gut.de.example.com", "+49305551235"),
            "Sina? Nein, Lena.",
            "sand",
        ),
    ]
    rows = [
        r
        for lead, person, message, key in people
        for r in lead_rows(lead, person, message, "company:" + key)
    ]
    # someone who quotes her address: his row is his, only her address is hers
    paul = contact("Paul", "Wolf", "Wolf OHG", "paul@wolf.de", "+49305552222")
    rows += lead_rows(
        PAUL, paul, f"Meine Kollegin {SINA} (030 5551234) hat auch Interesse", "company:wolf"
    )
    opened.insert(EVENTS_TABLE, rows)
    try:
        yield opened
    finally:
        opened.close()


def everything(warehouse: Warehouse) -> dict[str, dict[str, object]]:
    return {r["event_id"]: r for r in warehouse.query(f"SELECT * FROM {EVENTS_TABLE}")}


def test_namesakes_and_companies_alike_do_not_resolve_to_her(company: Warehouse) -> None:
    person = resolve_person(company, person_for(SINA, "DE"))
    assert person.lead_ids == {SINA_LEAD}
    assert person.emails == {SINA} and person.phones == {"+49305551234"}
    assert resolve_person(company, person_for("030 5551234", "DE")) == person
    assert resolve_person(company, person_for(str(SINA_LEAD), "DE")) == person


def test_her_export_holds_only_her_own_events(company: Warehouse) -> None:
    exported = export_person(company, resolve_person(company, person_for(SINA, "DE")))
    assert {e["lead_id"] for e in exported["events"]} == {str(SINA_LEAD)}
    assert len(exported["events"]) == 3
    text = orjson.dumps(exported).decode()
    for other in ("jens.brandt", "sina.koch", "lukas@", "paul@", "example.com", "Gutenberg"):
        assert other not in text


def test_erasing_her_leaves_everyone_else_as_they_were(company: Warehouse) -> None:
    before = everything(company)
    person = resolve_person(company, person_for(SINA, "DE"))

    assert erase_in_warehouse(company, person) == 3 + 2  # her 3 rows, Paul's 2 that quote her

    after = everything(company)
    assert after.keys() == before.keys()
    changed = {i for i in before if before[i] != after[i]}
    theirs = {i for i, r in before.items() if r["lead_id"] == str(SINA_LEAD)}
    assert theirs <= changed
    quoting = changed - theirs
    assert {after[i]["lead_id"] for i in quoting} == {str(PAUL)}
    for i in quoting:  # Paul keeps his contact and his words; her address and phone are gone
        text = str(after[i]["payload"])
        assert "paul@wolf.de" in text and "Meine Kollegin [erased] ([erased])" in text
        assert SINA not in text
        assert (
            str(before[i]["payload"]).replace(SINA, "[erased]").replace("030 5551234", "[erased]")
            == text
        )
    text = orjson.dumps([after[i] for i in theirs]).decode()
    assert SINA not in text and "5551234" not in text and "Brandt" not in text


def test_an_inquiry_split_off_a_lead_no_longer_makes_that_lead_the_persons(
    tmp_path: Path,
) -> None:
    """Jonas's inquiry was merged into his father's lead and an operator split it off
    (`leadflow lead split`): erasing Jonas leaves the father's lead alone, though
    Jonas's merged capture and its follow-ups still carry the father's lead id."""
    father, jonas, trace = uuid.uuid4(), "jonas.weber@weber.de", uuid.uuid4()
    became = split_lead_id(trace, father)
    dad = {"email": "karl.weber@weber.de", "last_name": "Weber"}
    son = {"email": jonas, "last_name": "Weber"}
    opened = open_warehouse(load_settings(state_dir=tmp_path, warehouse_dir=tmp_path / "wh"))
    try:
        opened.insert(
            EVENTS_TABLE,
            [
                row("LeadCaptured", father, {"payload": {"contact": dad}}),
                row("LeadCaptured", father, {"payload": {"contact": son}}, trace=trace),
                row("LeadEnriched", father, {"payload": {"score": 1}}, trace=trace),
                row("LeadCaptured", became, {"payload": {"contact": son}}, trace=trace),
                row(
                    "IdentityCorrected",
                    father,
                    {"payload": {"action": "split_off", "other_lead": str(became)}},
                ),
            ],
        )
        person = resolve_person(opened, person_for(jonas, "DE"))
        assert person.lead_ids == {became}
        assert person.emails == {jonas}
        erase_in_warehouse(opened, person)
        text = orjson.dumps(opened.query(f"SELECT payload FROM {EVENTS_TABLE}")).decode()
        assert "karl.weber@weber.de" in text and jonas not in text
    finally:
        opened.close()
