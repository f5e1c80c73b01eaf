"""Table erasure: a person's entries leave the worker's tables and their changelogs.

Kafka cannot delete one record, so each changelog partition that ever held the
person is rewritten with the current value of every other key and then
truncated before that rewrite (see docs/privacy.md).
"""

from __future__ import annotations

from typing import Any

import faust
from aiokafka import TopicPartition

from pipeline.adapters.kafka.erasure import KafkaEraser, read_partition
from pipeline.adapters.kafka.security import Broker
from pipeline.domain.privacy.person import Person, forget_entry
from pipeline.errors import LeadflowError
from pipeline.worker.tables import local_db, local_items


async def erase_tables(app: faust.App, bootstrap: Broker, person: Person, partition: int) -> int:
    """Remove the person from this partition's slice of every table, and rewrite that
    slice's changelog partition so its dropped head holds only superseded values;
    return how many entries changed. Runs inside the `erase` agent, for the
    partition of its command."""
    changed = 0
    actives = app.assignor.assigned_actives()
    await app.producer.flush()  # every local write is in its changelog before the read
    async with KafkaEraser(bootstrap) as kafka:
        for table in app.tables.values():
            if partition >= table.partitions:
                continue
            tp = TopicPartition(table.changelog_topic.get_topic_name(), partition)
            scan, end = await read_partition(bootstrap, tp, person)
            local = _local_personal(table, partition, person)
            personal = sorted(set(scan.personal(person)) | local)
            if not scan.mentions_person and not local:  # nothing of the person, live or old
                continue
            if tp not in actives:
                raise LeadflowError(f"{tp.topic}/{partition} is not active on this worker")
            for raw in personal:
                changed += 1
                key = table.data._decode_key(raw)
                kept = forget_entry(raw, table.get(key), person)
                if kept is not None:
                    table[key] = kept
                elif key in table:
                    del table[key]
            for raw in scan.live.keys() - set(personal):
                key = table.data._decode_key(raw)
                value = table.get(key)
                if value is not None:  # rewritten after `end`: the head holds no state
                    table[key] = value
            await app.producer.flush()
            await kafka.make_deletable(tp.topic)
            await kafka.delete_before(tp, end)
            _compact_local(table, partition)
    return changed


def _local_personal(table: Any, partition: int, person: Person) -> set[bytes]:
    """Keys of this partition's local store that are or mention the person: the
    store is what the worker's files hold, so it is searched as well as the
    changelog (a write whose changelog record was still on its way would be
    missed by the log alone)."""
    return {k for k, v in local_items(table, partition) if person.owns_key(k) or person.found_in(v)}


def _compact_local(table: Any, partition: int) -> None:
    """RocksDB keeps deleted values in its files until a compaction: run one now."""
    db = local_db(table, partition)
    if db is not None:
        db.flush()
        db.compact_range(None, None)
