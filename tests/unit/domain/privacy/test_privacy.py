"""Recognising and removing a person's data (no I/O); keeping it out of logs is
tested with the log set-up, in tests/unit/config/test_logs.py."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import orjson
import pytest

from pipeline.domain.privacy.person import (
    ERASED,
    Person,
    TableScan,
    contacts_in,
    forget_entry,
    person_for,
    redact_person,
    scrub_text,
)
from schemas.privacy import EraseLead

ANNA = Person(emails=frozenset({"anna.schmidt@firma.de"}), phones=frozenset({"+49301234567"}))


def test_a_subject_is_a_lead_id_an_email_or_a_phone() -> None:
    lead = uuid.uuid4()
    assert person_for(str(lead), "DE").lead_ids == {lead}
    assert person_for(" Anna.Schmidt@Firma.de ", "DE").emails == {"anna.schmidt@firma.de"}
    assert person_for("+49301234567", "DE").phones == {"+49301234567"}
    assert person_for("030 1234567", "DE").phones == {"+49301234567"}  # E.164, as stored
    assert person_for("Gut GmbH", "DE") == Person()  # a company finds nobody


def test_a_person_is_found_case_insensitively_and_inside_a_rejections_original() -> None:
    original = b'{"contact": {"email": "ANNA.Schmidt@firma.de"}, "source": 5}'
    rejection = orjson.dumps(
        {"payload": {"stage": "capture", "original_b64": base64.b64encode(original).decode()}}
    )
    assert ANNA.found_in(rejection)
    assert ANNA.found_in(b"identity: email:anna.schmidt@firma.de")
    assert not ANNA.found_in(b'{"contact": {"email": "paul@firma.de"}}')
    assert not Person(lead_ids=frozenset({uuid.uuid4()})).found_in(rejection)


def test_contacts_are_read_from_contact_identity_and_activity_fields_not_the_owner() -> None:
    document = {
        "identity": "email:anna.schmidt@firma.de",
        "payload": {
            "qualification": {"profile": {"contact": {"phone": "+49301234567"}}},
            "owner": {"email": "rep@our-company.de"},
        },
    }
    found = contacts_in(document)
    assert found.emails == {"anna.schmidt@firma.de"}
    assert found.phones == {"+49301234567"}


SINA_LEAD, JENS_LEAD, KOCH_LEAD = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
SINA = Person(
    lead_ids=frozenset({SINA_LEAD}),
    emails=frozenset({"s.brandt@gut.de"}),
    phones=frozenset({"+49305551234"}),
    names=frozenset({"sina", "brandt"}),
)
"""Sina Brandt at Gut GmbH. Around her: Jens Brandt at her company (his address
ends in hers), Sina Koch at Gutenberg Druck GmbH, a lead whose message says
"Guten Tag, wir sind gut aufgestellt", and a phone that starts with hers."""


def _doc(lead: uuid.UUID, contact: dict[str, str], **payload: object) -> bytes:
    return orjson.dumps({"lead_id": str(lead), "payload": {"contact": contact, **payload}})


def test_a_company_identity_key_is_no_phone_number() -> None:
    """The root of issue 15 point 3: `company:gut` became the phone "gut"."""
    claim = {"identity": "company:gut", "person": "email:s.brandt@gut.de", "name": "sina brandt"}
    found = contacts_in(claim)
    assert found.phones == frozenset() and found.emails == {"s.brandt@gut.de"}
    assert contacts_in({"contact": {"phone": "030 5551234"}}).phones == frozenset()  # not E.164


@pytest.mark.parametrize(
    "record",
    [
        _doc(JENS_LEAD, {"email": "jens.brandt@gut.de", "last_name": "Brandt"}),
        _doc(KOCH_LEAD, {"email": "sina.koch@gutenberg-druck.de", "first_name": "Sina"}),
        _doc(KOCH_LEAD, {"company": "Gutenberg Druck GmbH"}),
        orjson.dumps({"message": "Guten Tag, wir sind gut aufgestellt. Frau Brandt von Gut GmbH"}),
        orjson.dumps(
            {"identity": "company:gut", "lead": str(JENS_LEAD), "person": "email:j@gut.de"}
        ),
        orjson.dumps({"contact": {"phone": "+493055512348"}}),  # hers is a prefix of it
        orjson.dumps({"message": "Tel. +49 30 555 1234 8"}),
        orjson.dumps({"contact": {"email": "s.brandt@gut.de.example.com"}}),
        orjson.dumps({"inquiry_id": "web-s.brandt@gut.de-2"}),
        b"p3|i|gut.de",
    ],
)
def test_nobody_else_is_found_by_substring_name_or_company(record: bytes) -> None:
    assert not SINA.found_in(record) and not SINA.owns_key(record)


def test_the_person_is_found_by_each_exact_key_however_it_is_spelt() -> None:
    assert SINA.owns_record(_doc(uuid.uuid4(), {"email": "S.Brandt@Gut.DE"}))
    assert SINA.owns_record(orjson.dumps({"contact": {"phone": "030 555 12 34"}}))
    assert SINA.owns_record(orjson.dumps({"lead_id": str(SINA_LEAD), "payload": {}}))
    assert SINA.owns_record(orjson.dumps({"lead": str(JENS_LEAD), "key": "phone:+49305551234"}))
    assert SINA.owns_key(f'"{SINA_LEAD}:inside-sales:0"'.encode())
    assert SINA.owns_key(b"email:s.brandt@gut.de")
    quoted = orjson.dumps({"lead_id": str(JENS_LEAD), "message": "ask s.brandt@gut.de"})
    assert SINA.mentioned_in(quoted) and not SINA.owns_record(quoted)
    assert SINA.mentioned_in(b"Ruf an: +49 (0)30 5551234, bis morgen")


def test_a_companys_people_keep_their_entries_when_one_is_erased() -> None:
    """`identity-lead` lists a company's people; entries may carry more fields."""
    people = [
        {"name": "sina brandt", "lead": str(SINA_LEAD), "person": "email:s.brandt@gut.de"},
        {"name": "jens brandt", "lead": str(JENS_LEAD), "person": "email:jens.brandt@gut.de"},
        {"name": "sina brandt", "lead": str(KOCH_LEAD), "person": "email:x@y.de", "phone": "+1"},
        {  # as identity.py keeps them since IdentityClaimed 1.1: every key of the person
            "name": "lars brandt",
            "lead": str(uuid.uuid4()),
            "person": "email:lars@gut.de",
            "keys": ["email:lars@gut.de", "phone:+493055512348"],
        },
    ]
    by_key_only = {
        **people[0],
        "lead": str(uuid.uuid4()),
        "person": "",
        "keys": ["phone:+49305551234"],
    }
    assert forget_entry(b"3f2a", [by_key_only, people[3]], SINA) == [people[3]]
    assert forget_entry(b"3f2a", people, SINA) == people[1:]
    assert forget_entry(b"3f2a", people[1:], SINA) == people[1:]
    assert (
        forget_entry(b"9c1d", {"lead": str(SINA_LEAD), "key": "email:s.brandt@gut.de"}, SINA)
        is None
    )
    assert forget_entry(f'"{SINA_LEAD}"'.encode(), "2026-11-23T10:00:00|step-2", SINA) is None
    assert forget_entry(b"9c1d", [people[0]], SINA) is None


def test_another_leads_entry_that_quotes_her_only_loses_her_address() -> None:
    state = {
        "profile": {
            "contact": {"email": "lukas@weber.de", "last_name": "Meyer"},
            "message": "Guten Tag, gut aufgestellt; Frau Brandt (s.brandt@gut.de) kennt uns",
        }
    }
    kept = forget_entry(str(KOCH_LEAD).encode(), orjson.dumps(state), SINA)
    assert isinstance(kept, bytes)
    assert orjson.loads(kept)["profile"] == {
        "contact": {"email": "lukas@weber.de", "last_name": "Meyer"},
        "message": f"Guten Tag, gut aufgestellt; Frau Brandt ({ERASED}) kennt uns",
    }
    assert forget_entry(b"k", {"message": "Guten Tag, gut aufgestellt"}, SINA) == {
        "message": "Guten Tag, gut aufgestellt"
    }
    pull = [
        orjson.dumps({"lead_id": str(SINA_LEAD)}).decode(),
        orjson.dumps({"lead_id": str(JENS_LEAD)}).decode(),
    ]
    assert forget_entry(b"queue", pull, SINA) == pull[1:]


def test_someone_elses_row_keeps_its_own_fields_and_only_loses_her_keys() -> None:
    original = base64.b64encode(b'{"message": "wie s.brandt@gut.de"}').decode()
    row = orjson.dumps(
        {
            "lead_id": str(JENS_LEAD),
            "payload": {"contact": {"email": "jens.brandt@gut.de"}, "original_b64": original},
        }
    ).decode()
    scrubbed = orjson.loads(scrub_text(row, SINA))
    assert scrubbed["payload"]["contact"] == {"email": "jens.brandt@gut.de"}
    decoded = base64.b64decode(scrubbed["payload"]["original_b64"])
    assert decoded == b'{"message": "wie ' + ERASED.encode() + b'"}'


def test_redaction_keeps_ids_times_channel_and_outcome_but_no_personal_field() -> None:
    lead = str(uuid.uuid4())
    event = {
        "event_id": str(uuid.uuid4()),
        "lead_id": lead,
        "occurred_at": "2026-11-23T10:00:00Z",
        "source": {"channel": "web_form", "campaign": "spring"},
        "payload": {
            "status": "sql",
            "profile": {
                "contact": {
                    "email": "anna.schmidt@firma.de",
                    "last_name": "Schmidt",
                    "country": "DE",
                },
                "message": "call me on +49301234567",
            },
            "recipient": "anna.schmidt@firma.de",
            "notes": "Anna.Schmidt@firma.de asked twice",
        },
    }
    text = redact_person(orjson.dumps(event).decode(), ANNA)
    stripped = orjson.loads(text)
    assert "schmidt" not in text.casefold() and "1234567" not in text
    assert stripped["lead_id"] == lead and stripped["event_id"] == event["event_id"]
    assert stripped["source"] == event["source"] and stripped["payload"]["status"] == "sql"
    assert stripped["payload"]["profile"]["contact"] == {"country": "DE"}
    assert stripped["payload"]["notes"] == ERASED


def test_a_rejections_original_bytes_are_dropped() -> None:
    original = base64.b64encode(b"anna.schmidt@firma.de").decode()
    text = redact_person(
        orjson.dumps({"payload": {"original_b64": original, "offset": 4}}).decode(), ANNA
    )
    assert orjson.loads(text) == {"payload": {"original_b64": "", "offset": 4}}


def test_plain_text_that_mentions_the_person_is_erased_other_text_kept() -> None:
    assert redact_person("mail anna.schmidt@firma.de", ANNA) == ERASED
    assert redact_person("web_form", ANNA) == "web_form"


def test_a_table_scan_keeps_the_latest_value_and_finds_the_persons_keys() -> None:
    scan = TableScan()
    scan.apply(b"email:anna.schmidt@firma.de", b"lead-1")
    scan.apply(b"lead-2", b'{"contact": {"email": "anna.schmidt@firma.de"}}')
    scan.apply(b"lead-2", b'{"contact": {"email": "paul@firma.de"}}')
    scan.apply(b"lead-3", b'{"contact": {"email": "anna.schmidt@firma.de"}}')
    scan.apply(b"lead-3", None)
    assert scan.personal(ANNA) == [b"email:anna.schmidt@firma.de"]
    assert set(scan.live) == {b"email:anna.schmidt@firma.de", b"lead-2"}


def test_a_table_scan_notes_the_person_in_deleted_and_overwritten_values() -> None:
    scan = TableScan(ANNA)
    scan.apply(b"3f2a", b'["{\\"email\\": \\"anna.schmidt@firma.de\\"}"]')
    scan.apply(b"3f2a", None)  # handed over: the key is gone, its old value is not
    assert scan.personal(ANNA) == [] and scan.mentions_person
    other = TableScan(ANNA)
    other.apply(b"lead-2", b'{"contact": {"email": "paul@firma.de"}}')
    assert not other.mentions_person


def test_a_person_survives_json_and_an_erase_command_unchanged() -> None:
    """The worker answers a person as JSON, the CLI reads it back and sends it in an
    EraseLead that the worker turns into a Person again: every key arrives, namesakes
    at one company stay two people."""
    anna = Person(
        frozenset({uuid.UUID(int=2), uuid.UUID(int=1)}),
        frozenset({"anna.schmidt@firma.de", "a.schmidt@firma.de"}),
        frozenset({"+49301234567"}),
        frozenset({"anna", "schmidt"}),
    )
    namesake = Person(emails=frozenset({"anna.schmidt2@firma.de"}), names=anna.names)
    answer = orjson.loads(orjson.dumps(anna.as_json()))
    assert answer["lead_ids"] == [str(uuid.UUID(int=1)), str(uuid.UUID(int=2))]  # sorted
    assert Person.from_json(answer) == anna
    assert Person.from_json(namesake.as_json()) == namesake != anna
    assert Person.from_json({"emails": ["x@y.de"]}) == Person(emails=frozenset({"x@y.de"}))
    now = datetime.now(UTC)
    command = EraseLead(
        event_id=uuid.uuid4(),
        occurred_at=now,
        emitted_at=now,
        subject="anna.schmidt@firma.de",
        phase="tables",
        **anna.command_fields(),
    )
    wire = EraseLead.model_validate_json(command.model_dump_json())
    assert Person.from_command(wire) == anna
    assert wire.lead_ids == [uuid.UUID(int=1), uuid.UUID(int=2)]
