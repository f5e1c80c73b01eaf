"""Privacy: erasure (Art. 17) and access (Art. 15) for one person.

`privacy.erasure` carries `EraseLead` commands. Phase `tables` arrives on
every partition: the worker that owns partition p removes the person from
its slice of every table and rewrites that slice's changelog partition, so
its dropped head holds only superseded values. Phase `stores` (partition 0,
after all `tables` copies) truncates the topic partitions that hold the
person once every consumer group has processed them, and strips the
warehouse rows. Each share ends with a `LeadErased` audit record and by
deleting its own command (it names the person). See docs/privacy.md.
"""

from __future__ import annotations

import orjson
import structlog
from aiokafka import TopicPartition
from faust.web import Request, Response, View

from pipeline.adapters.kafka.erasure import KafkaEraser
from pipeline.adapters.warehouse.erasure import erase_in_warehouse, export_person, resolve_person
from pipeline.domain.privacy.person import Person, person_for
from pipeline.worker.services import Services
from pipeline.worker.stage import Received, Stage
from pipeline.worker.table_eraser import erase_tables
from schemas.envelope import derive_id, utcnow
from schemas.privacy import EraseLead, LeadErased

log = structlog.get_logger("leadflow.privacy")
STORES_TIMEOUT_S = 300.0


def register(stage: Stage, services: Services) -> None:
    """`erase` on privacy.erasure; the person and export endpoints where the warehouse is."""
    bootstrap = stage.settings.kafka
    sink = services.warehouse

    async def erase_stores(person: Person) -> tuple[int, int, bool]:
        topics = [s.name for s in stage.topics.all() if s != stage.topics.erasure]
        async with KafkaEraser(bootstrap) as kafka:
            truncated, pending = await kafka.erase_from_topics(topics, person, STORES_TIMEOUT_S)
        if pending:
            log.error("privacy.topics_pending", partitions=pending)
        if sink is None:
            log.error("privacy.no_warehouse", why="this worker does not own the warehouse")
            return truncated, 0, False
        rows = await sink.call(lambda w: erase_in_warehouse(w, person))
        return truncated, rows, not pending

    async def handle(command: EraseLead, partition: int) -> LeadErased:
        person = Person.from_command(command)
        tables = topics = rows = 0
        complete = True
        try:
            if command.phase == "tables":
                tables = await erase_tables(stage.app, bootstrap, person, partition)
            else:
                topics, rows, complete = await erase_stores(person)
        except Exception:
            log.exception("privacy.erase_failed", erasure_id=str(command.event_id))
            complete = False
        now = utcnow()
        return LeadErased(
            event_id=derive_id("LeadErased", command.event_id, command.phase, partition),
            occurred_at=now,
            emitted_at=now,
            erasure_id=command.event_id,
            phase=command.phase,
            partition=partition,
            lead_ids=sorted(command.lead_ids, key=str),
            table_entries=tables,
            topic_partitions=topics,
            warehouse_rows=rows,
            complete=complete,
        )

    async def erase(command: EraseLead, received: Received) -> LeadErased:
        at = received.at
        done = await handle(command, at.partition)
        async with KafkaEraser(bootstrap) as kafka:  # the command names the person
            await kafka.delete_before(TopicPartition(at.topic, at.partition), at.offset + 1)
        log.info(
            "privacy.erased",
            erasure_id=str(command.event_id),
            phase=command.phase,
            partition=at.partition,
            complete=done.complete,
        )
        return done

    stage.agent(stage.topics.erasure, "erase", erase, message=True)

    if sink is None:  # another process owns the warehouse and answers these
        return
    warehouse = sink
    region = stage.settings.default_region

    async def subject_of(request: Request) -> Person:
        subject = person_for(str((await request.json())["subject"]), region)
        return await warehouse.call(lambda w: resolve_person(w, subject))

    @stage.page("/v1/privacy/person")
    class Resolve(View):
        """POST {"subject": lead id, e-mail or phone}: the person's lead ids, e-mails, phones."""

        async def post(self, request: Request) -> Response:
            person = await subject_of(request)
            return self.json(person.as_json())

    @stage.page("/v1/privacy/export")
    class Export(View):
        """POST {"subject": …}: everything the warehouse holds about the person (Art. 15)."""

        async def post(self, request: Request) -> Response:
            person = await subject_of(request)
            found = await warehouse.call(lambda w: export_person(w, person))
            return self.bytes(orjson.dumps(found), content_type="application/json")
