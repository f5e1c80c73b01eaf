"""Upgrading a running deployment (issue 16 point 9): the worker of the old flat
layout writes state, the worker of the layered layout starts on it and finds it.

Faust names a table's changelog topic and its local store after the app id and
the table's name, so a renamed table would start empty (tests/unit/test_names_stay.py
pins the names; this test shows that the state behind them is found). The old
worker is the code of commit `FLAT_LAYOUT` (the last one before the move into
subpackages), taken from git history with `git archive` and run from its own
tree with this virtualenv. It qualifies, nurtures and assigns three people, then
stops cleanly, its inputs all committed. The new worker starts twice on the same
settings: once with the old worker's local table store, once with none (a new
host: the changelogs alone). Both times it must answer with the old worker's
state, and a second inquiry of two of the people must land on that person's
lead, and for the one in sales with the same owner and no second open lead.
The warehouse keeps every row the old worker stored.

The people bite: two namesakes at one company (different e-mails: two people),
and a third person whose message names the first.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.adapters.kafka.client import publish
from pipeline.adapters.worker_api import get_json, wait_until_stored, worker_answers
from pipeline.config.settings import PROJECT_ROOT, Settings
from pipeline.config.topics import Topics, load_topics
from pipeline.dev.harness import OutcomeWatcher, WorkerProcess, settings_env
from pipeline.domain.capture.inquiry import trace_id_for
from pipeline.errors import LeadflowError, WorkerRecovering
from schemas.envelope import utcnow
from schemas.lead import LeadAssigned, LeadNurtured
from tests.support.broker import read_topic
from tests.support.settings import isolated_settings

FLAT_LAYOUT = "f604e56"
"""The last commit of the flat layout (`pipeline/app.py`, `agents/timers.py`)."""
TIMEOUT_S = 180.0
CHANNEL = "web_form"


def extract_flat_layout(into: Path) -> Path:
    """The old layout's tree from git history; CI runs on a full clone, so a missing
    commit is a broken checkout, not a reason to skip."""
    found = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "cat-file", "-e", f"{FLAT_LAYOUT}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if found.returncode != 0:
        pytest.fail(
            f"commit {FLAT_LAYOUT} (the flat layout this test upgrades from) is not in the "
            f"git history of {PROJECT_ROOT}: run on a full clone (git fetch --unshallow)"
        )
    archive = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "archive", "--format=tar", FLAT_LAYOUT],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


class FlatLayoutWorker(WorkerProcess):
    """`python -m pipeline.cli worker` of the old tree, with this test's settings; its
    own topics.yaml and rules, as the deployment had them."""

    def __init__(self, settings: Settings, log_file: Path, tree: Path) -> None:
        super().__init__(settings, log_file)
        self.tree = tree
        self.env = {
            **settings_env(settings),
            "PYTHONPATH": str(tree),
            "LEADFLOW_TOPICS_FILE": str(tree / "topics.yaml"),
            "LEADFLOW_RULES_DIR": str(tree / "deploy" / "rules"),
        }

    def imported_from(self) -> Path:
        """Where the old worker's `pipeline` package comes from (not this checkout)."""
        where = subprocess.run(
            [sys.executable, "-c", "import pipeline.app; print(pipeline.app.__file__)"],
            cwd=self.tree,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(where.stdout.strip())

    def start(self, timeout: float = 90.0) -> None:
        with open(self.log_file, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", "worker"],
                cwd=self.tree,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not worker_answers(self.settings):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise LeadflowError(f"the flat-layout worker did not start; see {self.log_file}")
            time.sleep(0.3)


def person(inquiry_id: str, first: str, email: str, timeframe: int, message: str = "") -> bytes:
    body: dict[str, Any] = {
        "inquiry_id": inquiry_id,
        "received_at": utcnow().isoformat(),
        "source": {"channel": CHANNEL, "campaign": "upgrade"},
        "contact": {
            "first_name": first,
            "last_name": "Vogt" if first == "Jana" else "Berg",
            "email": email,
            "company": "Vogt Anlagenbau GmbH",
            "country": "DE",
            "postal_code": "20095",
        },
        "product_interest": ["crm-suite"],
        "answers": {"purchase_timeframe_months": timeframe},
    }
    if message:
        body["message"] = message
    return json.dumps(body).encode()


def trace(inquiry_id: str) -> str:
    return str(trace_id_for(f"{CHANNEL}:{inquiry_id}"))


async def decide(settings: Settings, topics: Topics, values: list[bytes]) -> None:
    """Publish inquiries and wait until each is answered and decided (sales or nurture)."""
    watcher = OutcomeWatcher(settings.kafka_bootstrap, topics)
    await watcher.start()
    try:
        positions = await publish(settings.kafka_bootstrap, topics.inquiries.name, values)
        pending = list(zip(values, positions, strict=True))
        deadline = time.monotonic() + TIMEOUT_S
        while pending and time.monotonic() < deadline:
            await watcher.poll()
            pending = [(v, at) for v, at in pending if not watcher.outcomes.accounted(v, at)]
        assert pending == [], f"{len(pending)} inquiries without an outcome"
    finally:
        await watcher.stop()


async def decisions(settings: Settings, topics: Topics) -> dict[str, LeadAssigned | LeadNurtured]:
    """Every sales-ready and nurture event so far, by the trace of its inquiry."""
    found: dict[str, LeadAssigned | LeadNurtured] = {}
    for _, raw in await read_topic(settings.kafka_bootstrap, topics.sales_ready):
        assigned = LeadAssigned.model_validate_json(raw or b"")
        found[str(assigned.trace_id)] = assigned
    for _, raw in await read_topic(settings.kafka_bootstrap, topics.nurture):
        nurtured = LeadNurtured.model_validate_json(raw or b"")
        found.setdefault(str(nurtured.trace_id), nurtured)
    return found


async def unread_by_the_group(settings: Settings) -> dict[str, int]:
    """Per topic the worker's group consumes: messages beyond its committed offsets."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.app_id)
        ends = await consumer.end_offsets(list(committed))
    finally:
        await consumer.stop()
        await admin.close()
    unread: dict[str, int] = {}
    for tp, offset in committed.items():
        unread[tp.topic] = unread.get(tp.topic, 0) + ends[tp] - offset.offset
    return unread


def when_ready(settings: Settings, path: str) -> Any:
    """GET `path` once the worker's tables are recovered (503 "recovering" before)."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            return get_json(settings, path)
        except WorkerRecovering:
            assert time.monotonic() < deadline, f"{path}: still recovering"
            time.sleep(0.2)


def state_of(settings: Settings, leads: list[str]) -> dict[str, Any]:
    """What the worker holds: each lead's qualification and nurture state, the open
    leads per rep."""
    queues = when_ready(settings, "/v1/queues")
    return {
        "qualification": {
            lead: when_ready(settings, f"/v1/leads/{lead}/qualification") for lead in leads
        },
        "nurture": {lead: when_ready(settings, f"/v1/leads/{lead}/nurture") for lead in leads},
        "open": {(q, r["rep_id"]): r["open"] for q, reps in queues.items() for r in reps},
    }


@pytest.mark.timeout(900)  # three worker starts and two recoveries on a shared 2-core machine
def test_the_new_worker_finds_the_state_the_flat_layout_wrote(kafka: str, tmp_path: Path) -> None:
    tree = extract_flat_layout(tmp_path / "flat")
    (tmp_path / "state").mkdir()
    settings = isolated_settings(kafka, tmp_path / "state")
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    run = uuid.uuid4().hex[:6]
    jana, namesake = f"jana.vogt@vogt-{run}.de", f"j.vogt.privat@vogt-{run}.de"
    first = {
        "hot": person(f"hot-{run}", "Jana", jana, 0),
        "namesake": person(f"namesake-{run}", "Jana", namesake, 12),
        "mentions": person(
            f"mentions-{run}",
            "Tomas",
            f"tomas.berg@vogt-{run}.de",
            12,
            message=f"Bitte auch Jana Vogt ({jana}) in Kopie nehmen.",
        ),
    }

    old = FlatLayoutWorker(settings, tmp_path / "old-worker.log", tree)
    assert old.imported_from().is_relative_to(tree)
    old.start()
    try:
        asyncio.run(decide(settings, topics, list(first.values())))
        decided = asyncio.run(decisions(settings, topics))
        by_person = {who: decided[trace(f"{who}-{run}")] for who in first}
        leads = [str(by_person[who].lead_id) for who in first]
        before = state_of(settings, leads)
        asyncio.run(wait_until_stored(settings))
        stored_before = get_json(settings, "/v1/warehouse/events")
    finally:
        stopped = old.stop()
    assert stopped == 0, f"the flat-layout worker's stop: see {old.log_file}"

    hot = by_person["hot"]
    assert isinstance(hot, LeadAssigned)
    assert isinstance(by_person["namesake"], LeadNurtured)
    assert len(set(leads)) == 3, "namesakes and the person named in a message are three people"
    owner = (hot.payload.queue, hot.payload.owner.rep_id)
    assert before["open"][owner] == 1
    assert all(before["qualification"][lead]["iteration"] == 1 for lead in leads)
    # What the new worker shows must be recovered state, not the inputs read again.
    unread = asyncio.run(unread_by_the_group(settings))
    assert unread and set(unread.values()) == {0}, unread

    new = WorkerProcess(settings, tmp_path / "new-worker.log")
    new.start()  # with the old worker's local table store
    try:
        assert state_of(settings, leads) == before
        stored_after = get_json(settings, "/v1/warehouse/events")
    finally:
        new.stop()
    assert {t: stored_after.get(t, 0) for t in stored_before} == stored_before

    shutil.rmtree(settings.state_dir / "worker")  # a new host: the changelogs alone
    new.start()
    try:
        assert state_of(settings, leads) == before
        again = {
            "hot": person(f"hot-again-{run}", "Jana", jana, 0),
            "namesake": person(f"namesake-again-{run}", "Jana", namesake, 12),
        }
        asyncio.run(decide(settings, topics, list(again.values())))
        decided = asyncio.run(decisions(settings, topics))
        second = {who: decided[trace(f"{who}-again-{run}")] for who in again}
        after = state_of(settings, leads)
    finally:
        new.stop()

    hot_again = second["hot"]
    assert isinstance(hot_again, LeadAssigned)
    assert hot_again.lead_id == hot.lead_id  # the identity table knew her
    assert (hot_again.payload.queue, hot_again.payload.owner.rep_id) == owner
    assert isinstance(second["namesake"], LeadNurtured)
    assert second["namesake"].lead_id == by_person["namesake"].lead_id
    assert after["open"] == before["open"]  # the same lead again, not a second one
    iterations = {lead: after["qualification"][lead]["iteration"] for lead in leads}
    assert iterations == dict(zip(leads, [2, 2, 1], strict=True))
