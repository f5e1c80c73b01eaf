"""Erasure and export against the running worker, the real broker and chdb.

Sina Brandt (Gut GmbH) sends two inquiries (merged into one lead), a broken
one (rejected with its bytes) and an activity, among demo traffic and people
who bite: Jens Brandt at her company (his address ends in hers), Sina Koch at
Gutenberg Druck GmbH, and Lukas Meyer, whose message says "Guten Tag, wir sind
gut aufgestellt" and names her, and whose phone number starts with hers. After
`leadflow privacy erase` her e-mail address and phone number are nowhere: not
in any topic (read_committed or not, table changelogs included), not in the
worker's state directory, not in the warehouse; her events are still counted.
Nobody else changed: their warehouse rows, their topic records (but for the
head Kafka drops before her last record in a partition she is in), their table
entries and their qualification and nurture answers are as before. Her export
holds only her own data. The worker's log never held any e-mail address or
phone number it was sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.adapters.kafka.client import publish
from pipeline.adapters.kafka.erasure import find_in_topics, topic_partitions
from pipeline.adapters.kafka.reader import read_to_end
from pipeline.adapters.warehouse.clickhouse import open_warehouse
from pipeline.adapters.worker_api import get_bytes, get_json, wait_until_stored
from pipeline.config.access import operator_key
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics, load_topics
from pipeline.dev.harness import OutcomeWatcher, WorkerProcess
from pipeline.dev.traffic import demo_inquiries
from pipeline.domain.messages import Position
from pipeline.domain.privacy.person import Person
from tests.support.processes import leadflow
from tests.support.settings import isolated_settings

TIMEOUT_S = 240.0
EMAIL = re.compile(rb"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass
class Run:
    settings: Settings
    topics: Topics
    worker: WorkerProcess
    email: str
    phone_typed: str
    phone_e164: str
    sent: list[bytes]
    export_before: dict[str, Any]
    funnel_before: list[dict[str, object]]
    erase: subprocess.CompletedProcess[str]
    others: dict[str, str]
    """The people around her: name → e-mail address."""
    before: Snapshot
    after: Snapshot

    @property
    def person(self) -> Person:
        return Person(emails=frozenset({self.email}), phones=frozenset({self.phone_e164}))

    @cached_property
    def hers(self) -> re.Pattern[bytes]:
        """Her address and number as whole tokens (the test's own rule, not the code's)."""
        email = rb"(?<![\w.+-])" + re.escape(self.email.encode()) + rb"(?![\w-]|\.[\w-])"
        phones = [re.escape(p.encode()) for p in (self.phone_typed, self.phone_e164)]
        return re.compile(
            b"|".join([email, *(rb"(?<![\d+])" + p + rb"(?!\d)" for p in phones)]), re.I
        )

    @cached_property
    def her_leads(self) -> set[str]:
        """Her leads by the test's own rule: the leads of rows that hold her address or number."""
        return {
            row["lead_id"]
            for row in self.before.rows.values()
            if row["lead_id"] and any(self.hers.search(t) for t in _texts(row["payload"].encode()))
        }


@dataclass
class Snapshot:
    """Everything stored, to compare before and after the erasure."""

    rows: dict[str, dict[str, Any]]
    """Warehouse rows by event id."""
    records: dict[tuple[str, int, int], tuple[bytes | None, bytes | None]]
    """Every record of the tenant's topics (changelogs too): (topic, partition, offset)."""
    answers: dict[str, tuple[int, bytes]]
    """Each other lead's qualification and nurture answer: path → (status, body)."""

    def tables(self, app_id: str) -> dict[str, dict[bytes, Any]]:
        """Each table's live entries (its changelog's latest value per key), parsed."""
        live: dict[str, dict[bytes, Any]] = {}
        for (topic, _, _), (key, value) in sorted(self.records.items()):
            if topic.startswith(app_id) and topic.endswith("-changelog") and key is not None:
                entries = live.setdefault(topic[len(app_id) + 1 : -len("-changelog")], {})
                if value is None:
                    entries.pop(key, None)
                else:
                    entries[key] = _parsed(value)
        return live


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return leadflow(settings, *args, timeout=TIMEOUT_S + 60)


def _person_messages(email: str, phone: str, tag: str) -> tuple[list[bytes], bytes]:
    contact = {
        "first_name": "Sina",
        "last_name": "Brandt",
        "company": "Gut GmbH",
        "email": email,
        "phone": phone,
        "postal_code": "10115",
        "city": "Berlin",
        "country": "DE",
    }
    web = {
        "inquiry_id": f"privacy-web-{tag}",
        "source": {"channel": "web_form", "campaign": "spring-launch"},
        "contact": contact,
        "message": f"Bitte rufen Sie mich an: {phone}",
        "product_interest": ["crm-suite"],
        "answers": {"purchase_timeframe_months": 1, "order_volume_eur": 320000.0},
        "consent": {"marketing_email": True},
    }
    fair = {**web, "inquiry_id": f"privacy-fair-{tag}", "source": {"channel": "trade_fair"}}
    broken = {**web, "inquiry_id": f"privacy-bad-{tag}", "answers": {"employees": "viele"}}
    activity = {
        "activity_id": f"privacy-act-{tag}",
        "occurred_at": datetime.now(UTC).isoformat(),
        "activity_type": "page_view",
        "email": email,
    }
    return [orjson.dumps(m) for m in (web, fair, broken)], orjson.dumps(activity)


def _neighbours(tag: str, phone: str, wave: int) -> tuple[dict[str, str], list[bytes]]:
    """Jens Brandt at her company (his address ends in hers), Sina Koch at
    Gutenberg Druck GmbH, Lukas Meyer with "gut" and her name in his message and
    her number plus one digit as his; `wave` 2 is each one's second inquiry."""
    people = [
        ("Jens", "Brandt", "Gut GmbH", f"jens.brandt.{tag}@gut.de", "030 5550001", "Angebot bitte"),
        (
            "Sina",
            "Koch",
            "Gutenberg Druck GmbH",
            f"sina.koch.{tag}@gutenberg-druck.de",
            "030 5550002",
            "Wir drucken Bücher und suchen ein CRM.",
        ),
        (
            "Lukas",
            "Meyer",
            "Weber AG",
            f"lukas.meyer.{tag}@weber-ag.de",
            phone + "8",
            "Guten Tag, wir sind gut aufgestellt. Frau Brandt von der Gut GmbH empfahl Sie.",
        ),
    ]
    messages = [
        orjson.dumps(
            {
                "inquiry_id": f"privacy-{first.casefold()}-{wave}-{tag}",
                "source": {"channel": "web_form", "campaign": "spring-launch"},
                "contact": {
                    "first_name": first,
                    "last_name": last,
                    "company": company,
                    "email": email,
                    "phone": number,
                    "postal_code": "10115",
                    "city": "Berlin",
                    "country": "DE",
                },
                "message": message,
                "product_interest": ["crm-suite"],
                "answers": {"purchase_timeframe_months": 6, "order_volume_eur": 40000.0},
            }
        )
        for first, last, company, email, number, message in people
    ]
    return {f"{first} {last}": email for first, last, _, email, _, _ in people}, messages


@pytest.fixture(scope="module")
def run(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    state = tmp_path_factory.mktemp("privacy")
    # SLA minutes of an hour: no reminder or breach changes anything while the
    # test compares before and after (nurture days are real days already)
    settings = isolated_settings(kafka, state).model_copy(update={"sla_minute_seconds": 3600.0})
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    worker = WorkerProcess(settings, state / "worker.log")
    worker.start()
    tag = uuid.uuid4().hex[:8]
    email = f"s.brandt.{tag}@gut.de"
    phone_typed = f"030 {int(tag[:6], 16) % 9000000 + 1000000}"
    phone_e164 = "+4930" + phone_typed.split()[1]
    try:
        demo = [m.value for m in demo_inquiries(60, seed=23, run=f"{tag}-")]
        inquiries, activity = _person_messages(email, phone_typed, tag)
        others, first = _neighbours(tag, phone_typed, 1)
        _, second = _neighbours(tag, phone_typed, 2)  # after hers, on the same partitions
        sent = [*demo, *first, *inquiries, *second, activity]
        asyncio.run(_feed(settings, topics, [*demo, *first, *inquiries, *second], activity))
        _settle(settings)  # her activity's events too
        export = cli(settings, "privacy", "export", email)
        assert export.returncode == 0, export.stdout + export.stderr
        funnel = get_json(settings, "/v1/reports/funnel")
        before = _snapshot(settings)
        erase = cli(settings, "privacy", "erase", email)
        asyncio.run(wait_until_stored(settings))
        after = _snapshot(settings, leads=before.answers)
        yield Run(
            settings,
            topics,
            worker,
            email,
            phone_typed,
            phone_e164,
            sent,
            json.loads(export.stdout),
            funnel,
            erase,
            others,
            before,
            after,
        )
    finally:
        worker.stop()


def _settle(settings: Settings) -> None:
    """Wait until the warehouse holds everything and nothing new came for 2 s (the
    sink's count of inserted rows: a re-sent inquiry's events replace rows with
    the same event ids, which no count of events shows)."""
    inserted = None
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        asyncio.run(wait_until_stored(settings))
        now = get_json(settings, "/v1/warehouse/lag")["inserted"]
        if now == inserted:
            return
        inserted = now
        time.sleep(2.0)
    raise AssertionError(f"the pipeline did not settle within {TIMEOUT_S} s")


def _parsed(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def _snapshot(settings: Settings, leads: dict[str, tuple[int, bytes]] | None = None) -> Snapshot:
    """The warehouse rows, every record of the tenant's topics, and the worker's
    answers for every lead (or for the paths of `leads`)."""
    query = (
        "SELECT toString(event_id) AS event_id, event_type, toString(lead_id) AS lead_id, "
        "toString(trace_id) AS trace_id, channel, campaign, payload FROM leadflow.lead_events FINAL"
    )
    request = urllib.request.Request(
        settings.web_url + "/v1/sql",
        data=query.encode(),
        headers={"X-Api-Key": operator_key(settings) or ""},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        rows = json.loads(response.read())
    assert isinstance(rows, dict) and len(rows["rows"]) < 10_000, rows
    by_id = {r["event_id"]: r for r in rows["rows"]}
    paths = (
        list(leads)
        if leads is not None
        else [
            f"/v1/leads/{lead}/{view}"
            for lead in sorted({r["lead_id"] for r in by_id.values() if r["lead_id"]})
            for view in ("qualification", "nurture")
        ]
    )
    records = asyncio.run(_records(settings))
    return Snapshot(by_id, records, {path: _answer(settings, path) for path in paths})


def _answer(settings: Settings, path: str) -> tuple[int, bytes]:
    """The status and body of a GET (the worker limits requests per second: wait)."""
    while True:
        try:
            return 200, get_bytes(settings, path)
        except urllib.error.HTTPError as exc:
            if exc.code != 429:
                return exc.code, exc.read()
        time.sleep(1.0)


async def _records(
    settings: Settings,
) -> dict[tuple[str, int, int], tuple[bytes | None, bytes | None]]:
    parts = await _tenant_partitions(settings)
    return {
        (tp.topic, tp.partition, r.offset): (r.key, r.value)
        async for tp, r in read_to_end(settings.kafka_bootstrap, parts, "read_uncommitted")
    }


async def _feed(
    settings: Settings, topics: Topics, inquiries: list[bytes], activity: bytes | None = None
) -> None:
    watcher = OutcomeWatcher(settings.kafka_bootstrap, topics)
    await watcher.start()
    try:
        positions = await publish(settings.kafka_bootstrap, topics.inquiries.name, inquiries)
        if activity is not None:
            await publish(settings.kafka_bootstrap, topics.activity.name, [activity])
        pending: list[tuple[bytes, Position]] = list(zip(inquiries, positions, strict=True))
        deadline = time.monotonic() + TIMEOUT_S
        while pending and time.monotonic() < deadline:
            await watcher.poll()
            pending = [(v, at) for v, at in pending if not watcher.outcomes.accounted(v, at)]
        assert not pending, f"{len(pending)} inquiries not processed"
    finally:
        await watcher.stop()


def test_export_gives_the_person_their_data_and_history(run: Run) -> None:
    data = run.export_before
    assert data["emails"] == [run.email]
    assert run.phone_e164 in data["phones"]  # type: ignore[operator]
    assert len(data["lead_ids"]) >= 1  # type: ignore[arg-type]
    types = {e["event_type"] for e in data["events"]}  # type: ignore[attr-defined, index]
    assert {"InquiryReceived", "LeadCaptured", "LeadQualified", "MessageRejected"} <= types
    assert "ActivityTracked" in types


def _texts(raw: bytes) -> list[bytes]:
    """The record, and the original bytes a rejection carries in it."""
    originals = re.findall(rb'"original_b64"\s*:\s*"([A-Za-z0-9+/=]*)"', raw)
    return [raw, *(base64.b64decode(o) for o in originals)]


def _about_her(run: Run, raw: bytes | None) -> bool:
    """A record that holds her address or number, or names one of her leads."""
    if not raw:
        return False
    leads = [lead.encode() for lead in run.her_leads]
    return any(run.hers.search(t) or any(lead in t for lead in leads) for t in _texts(raw))


def test_her_export_holds_only_her_own_data(run: Run) -> None:
    """Issue 15 point 4: it handed out 22 events of two other leads, with their addresses."""
    data = run.export_before
    assert set(data["lead_ids"]) == run.her_leads
    for event in data["events"]:
        assert event["lead_id"] in data["lead_ids"] or _about_her(
            run, orjson.dumps(event["data"])
        ), event["event_type"]
    text = json.dumps(data).casefold()
    for name, address in run.others.items():
        assert address not in text, name
    assert "gutenberg" not in text and "aufgestellt" not in text


def test_nobody_elses_warehouse_rows_changed(run: Run) -> None:
    """Issue 15 point 3: 11 of 15 rows each of two other leads were stripped."""
    mine = run.her_leads
    theirs = {
        i: row
        for i, row in run.before.rows.items()
        if row["lead_id"] not in mine and not _about_her(run, row["payload"].encode())
    }
    for name, address in run.others.items():
        assert any(address in row["payload"] for row in theirs.values()), name
    assert {i: run.after.rows.get(i) for i in theirs} == theirs
    gone = [i for i in run.before.rows if i not in run.after.rows]
    assert gone == []


def test_nobody_elses_topic_records_went_but_the_head_before_her_last(run: Run) -> None:
    """Kafka drops a partition's head up to her last record (docs/privacy.md,
    Limits); any other record of anyone else is still there, unchanged."""
    last: dict[tuple[str, int], int] = {}
    for (topic, partition, offset), (key, value) in run.before.records.items():
        if _about_her(run, key) or _about_her(run, value):
            last[(topic, partition)] = max(last.get((topic, partition), -1), offset)
    lost = [
        (topic, partition, offset)
        for (topic, partition, offset), record in run.before.records.items()
        if not topic.endswith("-changelog")  # rewritten, compared entry by entry below
        and run.after.records.get((topic, partition, offset)) != record
        and offset > last.get((topic, partition), -1)
    ]
    assert lost == []
    after_hers = [
        at
        for at, (key, value) in run.before.records.items()
        if at[2] > last.get(at[:2], len(run.before.records))
        and not (_about_her(run, key) or _about_her(run, value))
    ]
    assert after_hers  # others' records behind hers in her partitions (the second wave) stayed


def test_nobody_elses_table_entries_changed(run: Run) -> None:
    """Every table entry of anyone else is as it was (timers and SLA clocks too:
    the clocks run slow here); a company's list of people loses only her entry
    (`identity-lead`)."""
    before = run.before.tables(run.settings.app_id)
    after = run.after.tables(run.settings.app_id)
    assert {"identity-lead", "qualify-leads", "nurture-leads", "company-history"} <= set(before)
    lists = 0
    for table, entries in before.items():
        for key, value in entries.items():
            if _about_her(run, key):
                continue
            if isinstance(value, list):
                kept = [v for v in value if not _about_her(run, _bytes(v))]
                lists += len(kept) != len(value) and bool(kept)
                assert after[table].get(key) == (kept if kept or not value else None), (table, key)
            elif not _about_her(run, _bytes(value)):
                assert after[table].get(key) == value, (table, key)
    assert lists >= 1  # her company's people: Jens stayed


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode() if isinstance(value, str) else orjson.dumps(value)


def test_the_others_qualification_and_nurture_answers_are_unchanged(run: Run) -> None:
    """They went from 200 to 404 for two other leads (issue 15 point 3)."""
    mine = run.her_leads
    others = {p: a for p, a in run.before.answers.items() if p.split("/")[3] not in mine}
    assert sum(status == 200 for status, _ in others.values()) > 60
    assert {p: run.after.answers[p] for p in others} == others
    for path, (status, _) in run.after.answers.items():
        if path.split("/")[3] in mine:
            assert status == 404, path  # hers are gone


def test_erase_reports_success(run: Run) -> None:
    assert run.erase.returncode == 0, run.erase.stdout + run.erase.stderr
    assert "erased" in run.erase.stdout


async def _all_topics(settings: Settings) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = await admin.list_topics()
    finally:
        await admin.close()
    return [n for n in names if n.startswith((settings.topic_prefix, settings.app_id))]


async def _tenant_partitions(settings: Settings) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        return await topic_partitions(admin, await _all_topics(settings))
    finally:
        await admin.close()


async def _scan(settings: Settings, person: Person, isolation: str) -> list[str]:
    """Every message of the tenant's topics (the CLI's own search, run here as
    a check; the same check finds the person when the erasure is left out)."""
    parts = await _tenant_partitions(settings)
    assert len(parts) > 60
    hits = await find_in_topics(settings.kafka_bootstrap, parts, person, isolation)
    return sorted(f"{tp.topic}/{tp.partition}/{offset}" for tp, offset in hits.items())


@pytest.mark.parametrize("isolation", ["read_committed", "read_uncommitted"])
def test_no_topic_holds_the_erased_person(run: Run, isolation: str) -> None:
    assert asyncio.run(_all_topics(run.settings))
    assert asyncio.run(_scan(run.settings, run.person, isolation)) == []


def test_the_scan_would_find_other_people(run: Run) -> None:
    """The scan itself can fail: another person's e-mail is still in Kafka."""
    other = next(
        m.group(0).decode() for v in run.sent for m in [EMAIL.search(v)] if m and b"demo-" in v
    )
    hits = asyncio.run(_scan(run.settings, Person(emails=frozenset({other})), "read_committed"))
    assert hits


def _files_holding(directory: Path, hers: re.Pattern[bytes]) -> list[str]:
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files
    return [str(p) for p in files if hers.search(p.read_bytes())]


def test_the_workers_state_directory_holds_no_trace(run: Run) -> None:
    assert _files_holding(run.settings.state_dir / "worker", run.hers) == []


def test_the_warehouse_keeps_the_events_without_personal_data(run: Run) -> None:
    after = json.loads(
        _post(run, "/v1/privacy/export", {"subject": run.export_before["lead_ids"][0]})
    )  # type: ignore[index]
    before_ids = sorted(e["event_id"] for e in run.export_before["events"])  # type: ignore[attr-defined]
    text = json.dumps(after).casefold()
    assert run.email not in text and run.phone_e164 not in text
    assert run.phone_typed.split()[1] not in text
    kept = {e["event_id"] for e in after["events"]}
    lead_events = [
        e["event_id"]
        for e in run.export_before["events"]
        if e["lead_id"] not in (None, "")  # type: ignore[attr-defined]
    ]
    assert set(lead_events) <= kept and len(before_ids) >= len(kept) > 0
    assert get_json(run.settings, "/v1/reports/funnel") == run.funnel_before


def _post(run: Run, path: str, body: dict[str, object]) -> str:
    from pipeline.adapters.worker_api import post_json

    return json.dumps(post_json(run.settings, path, body))


def test_the_pipeline_goes_on_after_an_erasure(run: Run) -> None:
    later = orjson.dumps(
        {
            "inquiry_id": f"after-{uuid.uuid4().hex[:6]}",
            "source": {"channel": "web_form"},
            "contact": {"email": f"later.{uuid.uuid4().hex[:6]}@firma.de", "country": "DE"},
        }
    )
    asyncio.run(_feed(run.settings, run.topics, [later]))


def test_the_worker_log_holds_no_email_or_phone_it_was_sent(run: Run) -> None:
    log = Path(run.worker.log_file).read_bytes()
    assert b'"event": "stage.rejected"' in log and b'"event": "privacy.erased"' in log
    emails = {m.group(0).lower() for v in run.sent for m in EMAIL.finditer(v)}
    phones = {str(c["phone"]).encode() for v in run.sent for c in [_contact(v)] if c.get("phone")}
    assert len(emails) > 40 and len(phones) > 20
    assert [e for e in emails if e in log.lower()] == []
    assert [p for p in phones if p in log] == []
    assert run.phone_e164.encode() not in log


def _contact(value: bytes) -> dict[str, object]:
    try:
        contact = orjson.loads(value).get("contact")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return contact if isinstance(contact, dict) else {}


def test_the_warehouse_files_hold_no_trace_once_the_worker_stopped(run: Run) -> None:
    run.worker.stop()
    warehouse = open_warehouse(run.settings)
    try:
        tables = warehouse.query(  # aggregated states are binary: the file scan below reads them
            "SELECT database, name FROM system.tables WHERE database = 'leadflow' "
            "AND engine NOT IN ('AggregatingMergeTree', 'MaterializedView')"
        )
        assert tables
        for t in tables:
            rows = warehouse.query(f"SELECT * FROM {t['database']}.{t['name']}")
            holding = [
                row
                for row in rows
                if any(run.person.found_in(str(v).encode()) for v in row.values())
            ]
            assert holding == [], t
    finally:
        warehouse.close()
    # Mutations and other files ClickHouse keeps as text must not spell the person either.
    assert _files_holding(run.settings.embedded_warehouse_dir, run.hers) == []
