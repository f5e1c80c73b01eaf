"""Distribute through the real broker and worker: postal-code routing, an
unavailable rep skipped, a redelivered hand-off that gets no second owner, SLA
escalation, and CRM feedback that stops the clock and frees capacity."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from pydantic import BaseModel

from pipeline.adapters.kafka.client import publish
from pipeline.adapters.worker_api import get_json
from pipeline.config.topics import TopicSpec
from pipeline.dev.harness import WorkerProcess
from pipeline.domain.messages import Position
from pipeline.errors import WorkerRecovering
from schemas.envelope import utcnow
from schemas.inputs import CrmOutcome
from schemas.lead import (
    LeadAssigned,
    LeadHandedOff,
    LeadReleased,
    OutcomeRecorded,
    SlaBreached,
    SlaReminderDue,
)
from schemas.rejected import MessageRejected
from tests.support.broker import read_topic
from tests.support.distribute import Env, at_end, distribute_env, handoff
from tests.support.processes import leadflow

M = TypeVar("M", bound=BaseModel)


@pytest.fixture(scope="module")
def env(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    started = distribute_env(kafka, tmp_path_factory.mktemp("distribute"))
    with WorkerProcess(started.settings, started.settings.state_dir / "worker.log"):
        yield started


async def send_handoff(env: Env, lead: LeadHandedOff) -> None:
    """Keyed by its lead, as nurture sends them."""
    value = lead.model_dump_json().encode()
    key = str(lead.lead_id).encode()
    await publish(env.settings.kafka_bootstrap, env.topics.handoff.name, [value], key=key)


async def sales_ready(env: Env, leads: list[LeadHandedOff], expect: int) -> list[LeadAssigned]:
    """Publish the hand-offs, then read `expect` assignments for them."""
    consumer = await at_end(env, env.topics.sales_ready)
    wanted = {h.lead_id for h in leads}
    for h in leads:
        await send_handoff(env, h)
    found: list[LeadAssigned] = []
    deadline = time.monotonic() + 120  # a fresh broker is slow to coordinate groups
    try:
        while len(found) < expect and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    assigned = LeadAssigned.model_validate_json(record.value or b"")
                    if assigned.lead_id in wanted:
                        found.append(assigned)
    finally:
        await consumer.stop()
    return found


def test_after_a_restart_the_queues_say_recovering_until_they_show_the_true_load(
    kafka: str, tmp_path: Path
) -> None:
    """The queue table is read back from its changelog after a restart: from the
    first answer of the restarted worker on, /v1/queues says "recovering" (and
    health says so) until it shows the load it had, never a load of zero."""
    own = distribute_env(kafka, tmp_path)
    worker = WorkerProcess(own.settings, tmp_path / "worker.log")
    worker.start()
    try:
        leads = [handoff(90 + n) for n in range(4)] + [handoff(95, country="AT")]
        assert len(asyncio.run(sales_ready(own, leads, 5))) == 5
        before = get_json(own.settings, "/v1/queues")
    finally:
        worker.stop()
    load = {(q, r["rep_id"]): (r["open"], r["today"]) for q, reps in before.items() for r in reps}
    assert load[("everyone", "one")] == load[("everyone", "two")] == (2, 2)
    assert load[("capped", "solo")] == (1, 1)

    worker.start()  # returns at the first answer of its port
    answers: list[str] = []
    health: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            health.append(get_json(own.settings, "/v1/health")["status"])
            try:
                after = get_json(own.settings, "/v1/queues")
            except WorkerRecovering as exc:
                assert exc.retry_after >= 1
                answers.append("recovering")
                time.sleep(0.05)
                continue
            answers.append("load")
            break
        health.append(get_json(own.settings, "/v1/health")["status"])
    finally:
        worker.stop()
    assert after == before  # the first figures it shows are the true ones
    assert answers[0] == "recovering" and answers[-1] == "load", answers
    assert health[0] == "recovering" and health[-1] == "ok"


def test_a_lead_is_routed_by_postal_code_to_its_team(env: Env) -> None:
    leads = [handoff(1, "10115"), handoff(2, "80331")]
    found = {a.lead_id: a for a in asyncio.run(sales_ready(env, leads, 2))}
    berlin, munich = found[leads[0].lead_id].payload, found[leads[1].lead_id].payload
    assert (berlin.queue, berlin.rule, berlin.owner.rep_id) == (
        "berlin",
        "berlin-by-postal-code",
        "bea",
    )
    assert (munich.queue, munich.rule) == ("everyone", "default")


def test_an_unavailable_rep_is_skipped_and_the_others_take_turns(env: Env) -> None:
    leads = [handoff(10 + n) for n in range(6)]
    found = asyncio.run(sales_ready(env, leads, 6))
    owners = [a.payload.owner.rep_id for a in found]
    assert sorted(owners) == ["one"] * 3 + ["two"] * 3


def test_redelivery_of_the_same_handoff_assigns_no_second_owner(env: Env) -> None:
    lead = handoff(20)
    first = asyncio.run(sales_ready(env, [lead], 1))
    again = asyncio.run(sales_ready(env, [lead, lead], 2))
    assert len(first) == 1 and len(again) == 2
    assert {a.payload.owner.rep_id for a in first + again} == {first[0].payload.owner.rep_id}
    assert {a.event_id for a in first + again} == {first[0].event_id}


def test_a_requalified_lead_that_now_matches_another_queue_keeps_its_owner(env: Env) -> None:
    """Decisions are kept per queue partition: without the lead-keyed check in
    `route`, the Swiss fast lane would give this Berlin lead a second owner."""
    berlin = handoff(70, "10115")
    requalified = handoff(71, country="CH").model_copy(update={"lead_id": berlin.lead_id})
    first = asyncio.run(sales_ready(env, [berlin], 1))
    again = asyncio.run(sales_ready(env, [requalified], 1))
    assert len(first) == len(again) == 1
    assert [(a.payload.queue, a.payload.owner.rep_id) for a in first + again] == [
        ("berlin", "bea"),
        ("berlin", "bea"),
    ]
    assert again[0].trace_id == requalified.trace_id  # the new inquiry's own answer


async def read_new(env: Env, spec: TopicSpec, model: type[M], seconds: float) -> list[M]:
    """Everything that arrives on `spec` within `seconds` from its current end."""
    consumer = await at_end(env, spec)
    found: list[M] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found.extend(model.model_validate_json(r.value or b"") for r in records)
    finally:
        await consumer.stop()
    return found


async def crm(
    env: Env, lead: LeadHandedOff | uuid.UUID, outcome: str, key: bytes | None = None
) -> None:
    """A CRM's outcome for `lead`, keyed by its lead id (as it should be) or by `key`."""
    lead_id = lead if isinstance(lead, uuid.UUID) else lead.lead_id
    body = CrmOutcome(
        outcome_id=f"crm-{outcome}-{lead_id}",
        lead_id=lead_id,
        occurred_at=utcnow(),
        outcome=outcome,  # type: ignore[arg-type]
        amount_eur=1000.0 if outcome == "won" else None,
    )
    producer = AIOKafkaProducer(bootstrap_servers=env.settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:  # crm.feedback is keyed by lead_id: the lead's SLA clock lives in that partition
        value = body.model_dump_json().encode()
        await producer.send_and_wait(
            env.topics.feedback.name, value, key=key or str(lead_id).encode()
        )
    finally:
        await producer.stop()


async def first_matching(
    env: Env, spec: TopicSpec, model: type[M], wanted: Callable[[M], bool], seconds: float
) -> M | None:
    """The first message on `spec` (from its end now) that `wanted`, within `seconds`."""
    consumer = await at_end(env, spec)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    message = model.model_validate_json(record.value or b"")
                    if wanted(message):
                        return message
    finally:
        await consumer.stop()
    return None


def warehouse_outcome(env: Env, lead: uuid.UUID) -> str:
    """The lead's outcome in the warehouse's lead state ('' if none)."""
    query = (
        "SELECT argMaxMerge(outcome) AS outcome FROM leadflow.lead_state "
        f"WHERE lead_id = toUUID('{lead}') GROUP BY lead_id"
    )
    deadline = time.monotonic() + 30
    while True:
        done = cli(env, "report", "sql", query, "--format", "json")
        assert done.returncode == 0, done.stdout + done.stderr
        lag = get_json(env.settings, "/v1/warehouse/lag")["lag"]
        if lag == 0 or time.monotonic() > deadline:
            rows = json.loads(done.stdout)
            return str(rows[0]["outcome"]) if rows else ""
        time.sleep(0.5)


def test_an_outcome_under_another_leads_key_lands_on_its_bodys_lead(env: Env) -> None:
    """Issue 15 point 9: an outcome keyed by another lead sat in the wrong partition as an
    "early outcome" for ever (never applied, owner's load never freed), while the
    warehouse already showed the lead as won."""
    lead = handoff(90)
    spare = DefaultPartitioner()
    partitions = list(range(env.topics.feedback.partitions))

    def partition(key: bytes) -> int:
        return int(spare(key, partitions, partitions))

    own = partition(str(lead.lead_id).encode())
    other = next(k for k in (str(uuid.uuid4()).encode() for _ in range(100)) if partition(k) != own)

    async def scenario() -> tuple[OutcomeRecorded | None, LeadReleased | None]:
        (assigned,) = await sales_ready(env, [lead], 1)
        watches = (
            asyncio.create_task(
                first_matching(
                    env,
                    env.topics.outcomes,
                    OutcomeRecorded,
                    lambda e: e.lead_id == lead.lead_id,
                    60,
                )
            ),
            asyncio.create_task(
                first_matching(
                    env, env.topics.releases, LeadReleased, lambda e: e.lead_id == lead.lead_id, 60
                )
            ),
        )
        await asyncio.sleep(1)
        await crm(env, lead, "won", key=other)
        recorded, released = await asyncio.gather(*watches)
        assert recorded is None or recorded.payload.owner == assigned.payload.owner
        return recorded, released

    recorded, released = asyncio.run(scenario())
    assert recorded is not None and recorded.payload.outcome.outcome == "won"
    assert released is not None and released.payload.outcome == "won"  # the owner's load freed
    assert warehouse_outcome(env, lead.lead_id) == "won"


def test_an_outcome_for_no_lead_is_rejected_after_its_wait_and_never_reaches_the_lead(
    env: Env,
) -> None:
    """Issue 15 point 9: an outcome for a lead that does not exist was held for ever,
    silently, and the warehouse counted it as the lead's outcome."""
    nobody = uuid.uuid4()

    async def scenario() -> tuple[MessageRejected | None, OutcomeRecorded | None]:
        watches = (
            asyncio.create_task(
                first_matching(
                    env,
                    env.topics.rejected,
                    MessageRejected,
                    lambda r: (
                        r.payload.topic == env.topics.feedback.name
                        and str(nobody).encode() in base64.b64decode(r.payload.original_b64)
                    ),
                    60,
                )
            ),
            asyncio.create_task(
                first_matching(
                    env, env.topics.outcomes, OutcomeRecorded, lambda e: e.lead_id == nobody, 20
                )
            ),
        )
        await asyncio.sleep(1)
        await crm(env, nobody, "won")
        rejected, recorded = await asyncio.gather(*watches)
        return rejected, recorded

    rejected, recorded = asyncio.run(scenario())
    assert rejected is not None, "the outcome was held, never rejected"
    assert [r.code for r in rejected.payload.reasons] == ["unknown_lead"]
    assert rejected.payload.stage == "crm-feedback"
    assert recorded is None  # never applied
    assert warehouse_outcome(env, nobody) == ""  # the warehouse agrees with the worker


def test_an_uncontacted_lead_is_reminded_escalated_then_reassigned(env: Env) -> None:
    silent, called = handoff(30, country="CH"), handoff(31, country="CH")
    ours = {silent.lead_id, called.lead_id}

    async def scenario() -> tuple[list[LeadAssigned], list[SlaReminderDue], list[SlaBreached]]:
        topics = env.topics
        watches = (
            asyncio.create_task(read_new(env, topics.sales_ready, LeadAssigned, 20)),
            asyncio.create_task(read_new(env, topics.reminders, SlaReminderDue, 20)),
            asyncio.create_task(read_new(env, topics.escalations, SlaBreached, 20)),
        )
        await asyncio.sleep(1)
        assigned = await sales_ready(env, [silent, called], 2)
        assert len(assigned) == 2
        await crm(env, called, "contacted")
        sales, reminders, breaches = await asyncio.gather(*watches)
        return sales, reminders, breaches  # type: ignore[return-value]

    sales, reminders, breaches = asyncio.run(scenario())
    owners = [a.payload for a in sales if a.lead_id == silent.lead_id]
    first, second = owners[0], owners[1]
    assert first.owner.rep_id in {"f1", "f2"} and first.reassignment == 0
    assert (second.assigned_by, second.reassignment) == ("reassigned", 1)
    assert second.owner.rep_id in {"f1", "f2"} - {first.owner.rep_id}
    ladder = [b.payload.breach for b in breaches if b.payload.owner == first.owner]
    assert ladder[:2] == [1, 2]  # escalated, then reassigned (the new owner's clock runs too)
    assert {b.payload.escalate_to for b in breaches if b.lead_id in ours} == {"fast-boss"}
    assert called.lead_id not in {b.lead_id for b in breaches}  # contacted in time
    assert silent.lead_id in {r.lead_id for r in reminders}

    # Re-qualified after the reassignment: the lead goes to its current owner,
    # not back to the one who let it wait.
    asyncio.run(crm(env, silent, "contacted"))  # stops the clock: no further reassignment
    time.sleep(2)
    on_topic = asyncio.run(read_topic(env.settings.kafka_bootstrap, env.topics.sales_ready))
    current = max(
        (a for a in (LeadAssigned.model_validate_json(v or b"") for _, v in on_topic)
         if a.lead_id == silent.lead_id),
        key=lambda a: a.payload.reassignment,
    )  # fmt: skip
    assert current.payload.reassignment >= 1
    requalified = handoff(32, country="CH").model_copy(update={"lead_id": silent.lead_id})
    (latest,) = asyncio.run(sales_ready(env, [requalified], 1))
    assert (latest.payload.owner, latest.payload.reassignment) == (
        current.payload.owner,
        current.payload.reassignment,
    )


def test_a_closed_lead_frees_capacity_for_the_next(env: Env) -> None:
    first, second, third = (
        handoff(40, country="AT"),
        handoff(41, country="AT"),
        handoff(42, country="AT"),
    )

    async def scenario() -> list[str]:
        owners = [a.payload.owner.rep_id for a in await sales_ready(env, [first], 1)]
        owners += [a.payload.owner.rep_id for a in await sales_ready(env, [second], 1)]
        await crm(env, first, "won")
        await asyncio.sleep(2)  # the release travels via leads.releases to the queue's partition
        owners += [a.payload.owner.rep_id for a in await sales_ready(env, [third], 1)]
        return owners

    assert asyncio.run(scenario()) == ["solo", "cap-boss", "solo"]
    solo = get_json(env.settings, "/v1/queues")["capped"][0]
    assert (solo["rep_id"], solo["open"], solo["max_open"]) == ("solo", 1, 1)


def cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    """`leadflow ARGS` as its own process, with this module's settings."""
    return leadflow(env.settings, *args)


def test_leadflow_queues_shows_each_rep(env: Env) -> None:
    result = cli(env, "queues")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert lines["away"].endswith("away")  # the rep on leave
    assert lines["one"].endswith("available")
    assert "open 1/1" in lines["solo"]  # after the capacity test: one open lead, cap 1


def test_leadflow_routing_explain_tells_queue_rule_and_owner(env: Env) -> None:
    lead = handoff(50, "10117")
    assert len(asyncio.run(sales_ready(env, [lead], 1))) == 1
    result = cli(env, "routing", "explain", str(lead.lead_id))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "queue 'berlin', chosen by rule 'berlin-by-postal-code'" in result.stdout
    assert "owner Bea (bea)" in result.stdout
    unknown = cli(env, "routing", "explain", "no-such-lead")
    assert unknown.returncode == 1 and "has no owner yet" in unknown.stdout + unknown.stderr


def claim(env: Env, queue: str, key: str) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(
        f"{env.settings.web_url}/v1/queues/{queue}/claim",
        data=b"{}",
        headers={"X-Api-Key": key, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def times_parked(env: Env, lead: LeadHandedOff) -> int:
    """How often the worker said it parked the lead (its log: a pull queue emits nothing)."""
    log = (env.settings.state_dir / "worker.log").read_text(errors="replace")
    return sum(
        '"routing.waiting"' in line and str(lead.lead_id) in line for line in log.splitlines()
    )


async def hand_off(env: Env, *leads: LeadHandedOff) -> None:
    """Each hand-off parked before the next."""
    for lead in leads:
        parked = times_parked(env, lead)
        await send_handoff(env, lead)
        deadline = time.monotonic() + 60
        while times_parked(env, lead) == parked and time.monotonic() < deadline:
            await asyncio.sleep(0.2)


def test_a_pull_queue_lead_waits_until_a_rep_claims_it(env: Env) -> None:
    """Leads wait in line, oldest first; a redelivered hand-off waits once."""
    first, second = handoff(60, country="LU"), handoff(61, country="LU")
    ours = {first.lead_id, second.lead_id}

    async def scenario() -> tuple[list[LeadAssigned], list[LeadAssigned]]:
        before = asyncio.create_task(read_new(env, env.topics.sales_ready, LeadAssigned, 4))
        await asyncio.sleep(0.5)
        await hand_off(env, first, second, first)
        unclaimed = await before
        after = asyncio.create_task(read_new(env, env.topics.sales_ready, LeadAssigned, 10))
        await asyncio.sleep(0.5)
        for rep in ("key-p2", "key-p1", "key-p2"):  # the third finds no lead waiting
            assert claim(env, "pool", rep)[0] == 202
        return unclaimed, await after

    unclaimed, claimed = asyncio.run(scenario())
    assert (times_parked(env, first), times_parked(env, second)) == (2, 1)  # the repeat too
    assert not ours & {a.lead_id for a in unclaimed}  # nobody pushed them
    got = [  # the two leads are on different partitions: no order between them here
        (a.lead_id, a.payload.owner.rep_id, a.payload.assigned_by)
        for a in claimed
        if a.lead_id in ours or a.payload.assigned_by == "claimed"
    ]
    # the first claim (p2's) got the oldest lead, the second (p1's) the next, the third none
    assert sorted(got) == sorted(
        [(first.lead_id, "p2", "claimed"), (second.lead_id, "p1", "claimed")]
    )
    assert claim(env, "pool", "wrong")[0] == 401
    assert claim(env, "nowhere", "key-p1")[0] == 404
    assert claim(env, "everyone", "key-p1")[0] == 409


def rejections_of(env: Env, at: Position) -> list[MessageRejected]:
    """The rejections on leads.rejected that name the message at `at`."""
    rejected = asyncio.run(read_topic(env.settings.kafka_bootstrap, env.topics.rejected))
    found = (MessageRejected.model_validate_json(v or b"") for _, v in rejected)
    return [
        r
        for r in found
        if (r.payload.topic, r.payload.partition, r.payload.offset)
        == (at.topic, at.partition, at.offset)
    ]


def test_an_unreadable_crm_outcome_is_rejected_once(env: Env) -> None:
    """crm-feedback is the one reader of crm.feedback (qualify and nurture read the
    applied outcomes on leads.outcomes): it says once that the message is bad."""
    bad = b'{"outcome_id": "crm-bad", "outcome": "won"}'  # no lead, no time
    (at,) = asyncio.run(publish(env.settings.kafka_bootstrap, env.topics.feedback.name, [bad]))
    deadline = time.monotonic() + 60
    while not rejections_of(env, at) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # the topic's other consumers have read it by now, and said nothing
    assert [r.payload.stage for r in rejections_of(env, at)] == ["crm-feedback"]
