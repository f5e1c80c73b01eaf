"""Erasure and export against the real stores: Kafka topics, table changelogs, the warehouse.

Kafka cannot delete one record from a partition; it can only drop a
partition's head (DeleteRecords). So a person's records are removed by
truncating each partition that holds one, up to just after it, once every
consumer group has processed that far (nothing unprocessed is ever dropped;
the warehouse keeps every event). Table changelogs are first rewritten with
the current value of every other key, so the head dropped there only held
superseded values. See docs/privacy.md for the whole design and its limits.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import PolicyViolationError

from pipeline.errors import LeadflowError
from pipeline.identity import split_lead_id
from pipeline.privacy import (
    Person,
    TableScan,
    as_document,
    contacts_in,
    redact_text,
    scrub_text,
    texts_of,
)
from pipeline.topics import Topics
from pipeline.warehouse import EVENTS_TABLE, Warehouse
from schemas.privacy import EraseLead, LeadErased

log = structlog.get_logger("leadflow.privacy")
POLICY_CHANGE_S = 30.0
"""How long a changed cleanup policy may take to reach a topic's partitions."""


async def read_partition(
    bootstrap: str, tp: TopicPartition, person: Person
) -> tuple[TableScan, int]:
    """The latest value per key of one (changelog) partition, and its end offset;
    the scan also notes whether any record, superseded or deleted ones too,
    mentions the person (a compacted changelog keeps them until compaction)."""
    scan = TableScan(person)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_uncommitted"
    )
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                for r in records:
                    if r.offset < end:
                        scan.apply(r.key, r.value)
        return scan, end
    finally:
        await consumer.stop()


async def topic_partitions(admin: AIOKafkaAdminClient, names: list[str]) -> list[TopicPartition]:
    """Every partition of these topics (those that exist)."""
    described = await admin.describe_topics(names)
    return [
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t.get("error_code") == 0
        for p in t["partitions"]
    ]


async def read_records(
    bootstrap: str, parts: list[TopicPartition], isolation: str = "read_uncommitted"
) -> AsyncIterator[tuple[TopicPartition, ConsumerRecord[bytes, bytes]]]:
    """Every record on these partitions, from their start up to their end as the
    read began. Uncommitted by default: an aborted transaction's records are
    still on disk."""
    if not parts:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level=isolation
    )
    await consumer.start()
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for r in records:
                    if r.offset < ends[tp]:
                        yield tp, r
    finally:
        await consumer.stop()


async def find_in_topics(
    bootstrap: str,
    parts: list[TopicPartition],
    person: Person,
    isolation: str = "read_uncommitted",
) -> dict[TopicPartition, int]:
    """The last offset per partition whose message is the person's (its key names
    their lead or key, its value is their record) or mentions one of their keys
    (also inside the original a rejection carries)."""
    hits: dict[TopicPartition, int] = {}
    async for tp, r in read_records(bootstrap, parts, isolation):
        if person.owns_key(r.key) or person.found_in(r.value):
            hits[tp] = max(hits.get(tp, -1), r.offset)
    return hits


class KafkaEraser:
    """Truncates partitions and rewrites changelogs through the admin API."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)

    async def __aenter__(self) -> KafkaEraser:
        await self.admin.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.admin.close()

    async def processed_up_to(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """Per partition, the lowest offset any consumer group has committed
        (partitions no group reads are missing)."""
        wanted = set(tps)
        floor: dict[TopicPartition, int] = {}
        for group_id, *_ in await self.admin.list_consumer_groups():
            offsets = await self.admin.list_consumer_group_offsets(
                group_id, partitions=sorted(wanted)
            )
            for tp, meta in offsets.items():
                if tp in wanted and meta.offset >= 0:
                    floor[tp] = min(floor.get(tp, meta.offset), meta.offset)
        return floor

    async def truncate_processed(self, hits: dict[TopicPartition, int]) -> tuple[int, list[str]]:
        """Drop each partition's head up to just after the person's last record,
        where every consumer group is past it; the rest is returned as pending."""
        floor = await self.processed_up_to(hits)
        ready = {
            tp: RecordsToDelete(last + 1)
            for tp, last in hits.items()
            if tp not in floor or floor[tp] > last
        }
        if ready:
            await self.admin.delete_records(ready)
        pending = sorted(f"{tp.topic}/{tp.partition}" for tp in hits if tp not in ready)
        return len(ready), pending

    async def erase_from_topics(
        self, topics: list[str], person: Person, timeout: float
    ) -> tuple[int, list[str]]:
        """Repeat find → truncate until no record mentions the person (records
        still in flight through the pipeline are caught by the next round)."""
        deadline = time.monotonic() + timeout
        truncated: set[str] = set()
        parts = await topic_partitions(self.admin, topics)
        if len(parts) < len(topics):
            raise LeadflowError(f"not every topic of {topics} exists; run `leadflow topics apply`")
        while True:
            hits = await find_in_topics(self.bootstrap, parts, person)
            if not hits:
                return len(truncated), []
            _, pending = await self.truncate_processed(hits)
            truncated |= {f"{tp.topic}/{tp.partition}" for tp in hits} - set(pending)
            if time.monotonic() > deadline:
                return len(truncated), pending or sorted(f"{t.topic}/{t.partition}" for t in hits)
            await asyncio.sleep(0.5 if not pending else 1.0)

    async def make_deletable(self, topic: str) -> None:
        """Changelogs are compacted; DeleteRecords needs `compact,delete`, and
        retention.ms=-1 keeps time-based deletion from ever dropping table state."""
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        described = await self.admin.describe_configs([resource])
        current: dict[str, str] = {}
        for response in described:
            for *_, entries in response.resources:
                for name, value, _read_only, source, *_ in entries:
                    if source == 1:  # DYNAMIC_TOPIC_CONFIG: set on this topic
                        current[name] = value
        wanted = {**current, "cleanup.policy": "compact,delete", "retention.ms": "-1"}
        if wanted != current:
            await self.admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, wanted)]
            )

    async def end_offset(self, tp: TopicPartition) -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            return int((await consumer.end_offsets([tp]))[tp])
        finally:
            await consumer.stop()

    async def delete_before(self, tp: TopicPartition, offset: int) -> None:
        """Drop the partition's records before `offset`. Right after `make_deletable`
        the broker may still hold the topic's old `compact` policy and refuse
        (PolicyViolation): the new one takes a moment to reach the partition."""
        deadline = time.monotonic() + POLICY_CHANGE_S
        while True:
            try:
                await self.admin.delete_records({tp: RecordsToDelete(offset)})
                return
            except PolicyViolationError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)


# --- the warehouse -----------------------------------------------------------------


def sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def tables_with_lead_id(warehouse: Warehouse) -> list[tuple[str, dict[str, str]]]:
    """Every MergeTree table with a `lead_id` column, with its columns and types:
    tables added later are covered without a change here. Aggregated tables
    (AggregateFunction states, such as `lead_state`) are left out: they hold no
    text of an event, only what the materialized view extracts – channel,
    campaign, region, product, class, queue, rep, outcome – and no contact."""
    tables = warehouse.query(
        "SELECT database, name FROM system.tables WHERE engine LIKE '%MergeTree' "
        "AND database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') "
        "AND (database, name) IN "
        "(SELECT database, table FROM system.columns WHERE name = 'lead_id')"
    )
    found = []
    for row in tables:
        columns = warehouse.query(
            "SELECT name, type FROM system.columns WHERE database = "
            f"{sql_string(row['database'])} AND table = {sql_string(row['name'])}"
        )
        kinds = {c["name"]: c["type"] for c in columns}
        if not any(kind.startswith("AggregateFunction(") for kind in kinds.values()):
            found.append((f"{row['database']}.{row['name']}", kinds))
    return found


def _candidates(columns: dict[str, str], person: Person) -> str:
    """SQL condition for a superset of the person's rows: their lead ids, text
    holding one of their addresses, or the digits of one of their phones (any
    spelling). Which of these rows are really the person's – exactly, never by
    substring – `_person_rows` decides with `Person.owns_record`/`mentioned_in`."""
    terms = []
    if person.lead_ids:
        ids = ", ".join(sql_string(str(i)) for i in sorted(person.lead_ids, key=str))
        terms.append(f"toString(lead_id) IN ({ids})")
    for name, kind in columns.items():
        if "String" not in kind:
            continue
        text = f"ifNull(toString(`{name}`), '')"
        original = f"tryBase64Decode(JSONExtractString({text}, 'payload', 'original_b64'))"
        for where in (text, original):
            terms += [
                f"positionCaseInsensitiveUTF8({where}, {sql_string(email)}) > 0"
                for email in sorted(person.emails)
            ]
            terms += [
                f"position(replaceRegexpAll({where}, '[^0-9]', ''), {sql_string(digits)}) > 0"
                for digits in person.phone_digits
            ]
    return " OR ".join(terms) or "0"


def _person_rows(
    rows: list[dict[str, Any]], columns: dict[str, str], person: Person
) -> list[tuple[dict[str, Any], bool]]:
    """The candidate rows that are the person's own (True: their lead, or their
    contact/identity in a text column) or that mention one of their keys (False)."""
    leads = {str(i) for i in person.lead_ids}
    found = []
    for row in rows:
        texts = [v for k, v in row.items() if isinstance(v, str) and "String" in columns.get(k, "")]
        own = row.get("lead_id") in leads or any(person.owns_record(t) for t in texts)
        if own or any(person.mentioned_in(t) for t in texts):
            found.append((row, own))
    return found


def split_offs(warehouse: Warehouse) -> set[tuple[str, str]]:
    """(lead, the lead an inquiry became) for every inquiry an operator split off a
    lead (`leadflow lead split`)."""
    rows = warehouse.query(
        "SELECT toString(lead_id) AS left, "
        "JSONExtractString(payload, 'payload', 'other_lead') AS became "
        f"FROM {EVENTS_TABLE} WHERE event_type = 'IdentityCorrected' "
        "AND JSONExtractString(payload, 'payload', 'action') = 'split_off'"
    )
    return {(r["left"], r["became"]) for r in rows}


def split_off(row: dict[str, Any], splits: set[tuple[str, str]]) -> bool:
    """Whether the row's trace was split off the row's lead: the events it left on
    that lead (its merged capture, say) do not make the lead the person's."""
    if not row.get("trace_id") or not row.get("lead_id"):
        return False
    lead, trace = uuid.UUID(row["lead_id"]), uuid.UUID(row["trace_id"])
    return (str(lead), str(split_lead_id(trace, lead))) in splits


def resolve_person(warehouse: Warehouse, person: Person) -> Person:
    """Everything the warehouse links to the subject: the person's leads (also
    the provisional lead of an inquiry merged into an existing lead, by its
    trace, unless an operator split it off that lead), and the e-mail addresses and
    phone numbers of those leads. Only the
    person's own rows count: someone else's message that quotes their address
    does not make that lead theirs."""
    columns = {"payload": "String", "lead_id": "Nullable(UUID)"}
    splits = split_offs(warehouse)
    for _ in range(3):
        rows = warehouse.query(
            f"SELECT toString(lead_id) AS lead_id, toString(trace_id) AS trace_id, payload "
            f"FROM {EVENTS_TABLE} WHERE {_candidates(columns, person)}"
        )
        found = person
        traces = set()
        for row, own in _person_rows(rows, columns, person):
            if not own:
                continue
            for text in texts_of(row["payload"]):
                found = found.merge(contacts_in(as_document(text)))
            if row["lead_id"] and not split_off(row, splits):
                found = found.merge(Person(lead_ids=frozenset({uuid.UUID(row["lead_id"])})))
            if row["trace_id"]:
                traces.add(row["trace_id"])
        if traces:
            ids = ", ".join(sql_string(t) for t in sorted(traces))
            more = warehouse.query(
                f"SELECT DISTINCT toString(lead_id) AS lead_id, toString(trace_id) AS trace_id "
                f"FROM {EVENTS_TABLE} WHERE toString(trace_id) IN ({ids}) AND lead_id IS NOT NULL"
            )
            leads = (uuid.UUID(r["lead_id"]) for r in more if not split_off(r, splits))
            found = found.merge(Person(lead_ids=frozenset(leads)))
        if found == person:
            return person
        person = found
    return person


def export_person(warehouse: Warehouse, person: Person) -> dict[str, Any]:
    """Art. 15: every stored event of the person, oldest first, with the
    original bytes of rejected messages decoded. Only their own events: another
    lead's event that quotes their address is that other person's data."""
    columns = {"payload": "String", "lead_id": "Nullable(UUID)"}
    rows = warehouse.query(
        "SELECT toString(event_id) AS event_id, event_type, toString(lead_id) AS lead_id, "
        "toString(occurred_at) AS occurred_at, channel, campaign, topic, payload "
        f"FROM {EVENTS_TABLE} FINAL WHERE {_candidates(columns, person)} ORDER BY occurred_at"
    )
    events = []
    for row, own in _person_rows(rows, columns, person):
        if not own:
            continue
        row["data"] = as_document(row.pop("payload"))
        events.append(row)
    return {
        "lead_ids": sorted(str(i) for i in person.lead_ids),
        "emails": sorted(person.emails),
        "phones": sorted(person.phones),
        "names": sorted(person.names),
        "events": events,
    }


def _stripped(
    row: dict[str, Any], columns: dict[str, str], person: Person, own: bool
) -> dict[str, Any]:
    """The row without the person's data: their own row loses every personal
    field and any text naming them; someone else's row that mentions them only
    loses their addresses and numbers (its own contact, message and names stay)."""
    strip = redact_text if own else scrub_text
    return {
        name: strip(value, person)
        if isinstance(value, str) and "String" in columns.get(name, "")
        else value
        for name, value in row.items()
    }


def erase_in_warehouse(warehouse: Warehouse, person: Person) -> int:
    """Rows of the person, in every table with a lead_id column, are deleted and
    inserted again with their text columns stripped of personal data: the
    events stay countable (ids, times, channel, outcome), the person is gone.
    Rows of other people are untouched unless they quote one of the person's
    addresses or numbers, which alone is replaced.

    The DELETE names the rows by a hash of their content, not by the address:
    ClickHouse keeps the text of every mutation on disk."""
    changed = 0
    for table, columns in tables_with_lead_id(warehouse):
        row_hash = "cityHash64(toString(tuple(" + ", ".join(f"`{c}`" for c in columns) + ")))"
        candidates = warehouse.query(
            f"SELECT *, {row_hash} AS _row_hash FROM {table} WHERE {_candidates(columns, person)}"
        )
        rows = _person_rows(candidates, columns, person)
        if not rows:
            continue
        hashes = sorted({int(row.pop("_row_hash")) for row, _ in rows})
        stripped = [_stripped(row, columns, person, own) for row, own in rows]
        warehouse.execute(
            f"ALTER TABLE {table} DELETE WHERE {row_hash} IN ({', '.join(map(str, hashes))}) "
            "SETTINGS mutations_sync = 2"
        )
        warehouse.insert(table, stripped)
        changed += len(rows)
    return changed


# --- the operator's side: `leadflow privacy erase` -------------------------------


async def request_erasure(
    bootstrap: str, topics: Topics, subject: str, person: Person, timeout: float
) -> list[LeadErased]:
    """Send phase `tables` to every partition, wait for all shares, then phase
    `stores` once; return every share's audit record.

    Two rounds (each command its own id): the stores phase waits until every
    record about the person has been processed, so the second round's tables
    phase removes entries that records still in flight wrote after the first,
    and its stores phase anything emitted from those entries meanwhile."""
    watcher = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await watcher.start()
    await producer.start()
    try:
        audit = [TopicPartition(topics.erased.name, p) for p in range(topics.erased.partitions)]
        watcher.assign(audit)
        await watcher.seek_to_end(*audit)
        for tp in audit:
            await watcher.position(tp)
        done: list[LeadErased] = []
        deadline = time.monotonic() + timeout
        phases: list[tuple[str, list[int]]] = [
            ("tables", list(range(topics.erasure.partitions))),
            ("stores", [0]),
        ]
        for phase, partitions in phases * 2:
            erasure_id, now = uuid.uuid4(), datetime.now(UTC)
            command = EraseLead(
                event_id=erasure_id,
                occurred_at=now,
                emitted_at=now,
                subject=subject,
                lead_ids=sorted(person.lead_ids, key=str),
                emails=sorted(person.emails),
                phones=sorted(person.phones),
                names=sorted(person.names),
                phase=phase,  # type: ignore[arg-type]
            )
            for p in partitions:
                value = command.model_dump_json().encode()
                await producer.send_and_wait(topics.erasure.name, value, partition=p)
            shares: list[LeadErased] = []
            while len(shares) < len(partitions):
                if time.monotonic() > deadline:
                    raise LeadflowError(
                        f"erasure {erasure_id}: {len(shares)} of {len(partitions)} shares of "
                        f"phase {phase} answered within {timeout:.0f} s; is the worker running?"
                    )
                for records in (await watcher.getmany(timeout_ms=500)).values():
                    for r in records:
                        share = LeadErased.model_validate_json(r.value or b"")
                        if share.erasure_id == erasure_id and share.phase == phase:
                            shares.append(share)
            done += shares
        return done
    finally:
        await producer.stop()
        await watcher.stop()
