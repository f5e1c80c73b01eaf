"""Erasure and export against the running worker, the real broker and chdb.

A person sends two inquiries (merged into one lead), a broken one (rejected
with its bytes) and an activity, among demo traffic. After `leadflow privacy
erase` their e-mail address and phone number are nowhere: not in any topic
(read_committed or not, table changelogs included), not in the worker's state
directory, not in the warehouse; their events are still counted. The worker's
log never held any e-mail address or phone number it was sent.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.erasure import find_in_topics, topic_partitions
from pipeline.messages import Position
from pipeline.privacy import Person
from pipeline.runtime import (
    OutcomeWatcher,
    WorkerProcess,
    get_json,
    publish,
    wait_until_stored,
)
from pipeline.settings import Settings
from pipeline.topics import Topics, load_topics
from pipeline.traffic import demo_inquiries
from pipeline.warehouse import open_warehouse
from tests.conftest import isolated_settings, leadflow

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
    export_before: dict[str, object]
    funnel_before: list[dict[str, object]]
    erase: subprocess.CompletedProcess[str]

    @property
    def person(self) -> Person:
        return Person(
            emails=frozenset({self.email}), phones=frozenset({self.phone_typed, self.phone_e164})
        )


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return leadflow(settings, *args, timeout=TIMEOUT_S + 60)


def _person_messages(email: str, phone: str) -> tuple[list[bytes], bytes]:
    contact = {
        "first_name": "Erika",
        "last_name": "Mustermann",
        "email": email,
        "phone": phone,
        "postal_code": "10115",
        "city": "Berlin",
        "country": "DE",
    }
    web = {
        "inquiry_id": f"privacy-web-{email}",
        "source": {"channel": "web_form", "campaign": "spring-launch"},
        "contact": contact,
        "message": f"Bitte rufen Sie mich an: {phone}",
        "product_interest": ["crm-suite"],
        "answers": {"purchase_timeframe_months": 1, "order_volume_eur": 320000.0},
        "consent": {"marketing_email": True},
    }
    fair = {**web, "inquiry_id": f"privacy-fair-{email}", "source": {"channel": "trade_fair"}}
    broken = {**web, "inquiry_id": f"privacy-bad-{email}", "answers": {"employees": "viele"}}
    activity = {
        "activity_id": f"privacy-act-{email}",
        "occurred_at": datetime.now(UTC).isoformat(),
        "activity_type": "page_view",
        "email": email,
    }
    return [orjson.dumps(m) for m in (web, fair, broken)], orjson.dumps(activity)


@pytest.fixture(scope="module")
def run(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    state = tmp_path_factory.mktemp("privacy")
    settings = isolated_settings(kafka, state)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    worker = WorkerProcess(settings, state / "worker.log")
    worker.start()
    tag = uuid.uuid4().hex[:8]
    email = f"erika.mustermann.{tag}@privat-mail.de"
    phone_typed = f"030 {int(tag[:6], 16) % 9000000 + 1000000}"
    phone_e164 = "+4930" + phone_typed.split()[1]
    try:
        demo = [m.value for m in demo_inquiries(60, seed=23, run=f"{tag}-")]
        inquiries, activity = _person_messages(email, phone_typed)
        sent = [*demo, *inquiries, activity]
        asyncio.run(_feed(settings, topics, [*demo, *inquiries], activity))
        asyncio.run(wait_until_stored(settings))
        export = cli(settings, "privacy", "export", email)
        assert export.returncode == 0, export.stdout + export.stderr
        funnel = get_json(settings, "/v1/reports/funnel")
        erase = cli(settings, "privacy", "erase", email)
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
        )
    finally:
        worker.stop()


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


async def _scan(settings: Settings, person: Person, isolation: str) -> list[str]:
    """Every message of the tenant's topics (the CLI's own search, run here as
    a check; the same check finds the person when the erasure is left out)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        parts = await topic_partitions(admin, await _all_topics(settings))
    finally:
        await admin.close()
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


def _files_holding(directory: Path, person: Person) -> list[str]:
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files
    needles = [s.casefold().encode() for s in person.markers]
    return [str(p) for p in files if any(n in p.read_bytes().lower() for n in needles)]


def test_the_workers_state_directory_holds_no_trace(run: Run) -> None:
    assert _files_holding(run.settings.state_dir / "worker", run.person) == []


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
    from pipeline.runtime import post_json

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
    assert _files_holding(run.settings.embedded_warehouse_dir, run.person) == []
