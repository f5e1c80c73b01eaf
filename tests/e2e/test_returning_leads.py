"""Returning leads end to end (issue 15 point 2): a won customer who asks again goes
to the rep who won it as an upsell, a lost lead that comes back is qualified
afresh, and the reports count the customer's second deal.

Before, a new inquiry on a won or lost lead got its fulfillment answer and
nothing else (qualify emitted nothing once the lead had an outcome), so both
were lost – and `make demo` failed on its second run with the same people."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import BaseModel

from pipeline.adapters.kafka.client import publish
from pipeline.adapters.worker_api import get_json
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics, TopicSpec
from schemas.envelope import utcnow
from schemas.inputs import CrmOutcome
from schemas.lead import (
    LeadAssigned,
    LeadHandedOff,
    LeadNurtured,
    LeadQualified,
    OutcomeRecorded,
)
from tests.support.factories import inquiry
from tests.support.processes import started_worker

M = TypeVar("M", bound=BaseModel)
TIMEOUT_S = 120.0


class Tenant:
    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.settings, self.topics = settings, topics


@pytest.fixture(scope="module")
def tenant(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenant]:
    with started_worker(kafka, tmp_path_factory.mktemp("returning")) as (settings, topics, _):
        yield Tenant(settings, topics)


class Watch:
    """Everything that arrives on some topics from their end now on."""

    def __init__(self, t: Tenant, *specs: TopicSpec) -> None:
        self.t, self.specs = t, specs
        self.seen: dict[str, list[bytes]] = {spec.name: [] for spec in specs}
        self.consumer = AIOKafkaConsumer(bootstrap_servers=t.settings.kafka_bootstrap)

    async def __aenter__(self) -> Watch:
        await self.consumer.start()
        parts = [TopicPartition(s.name, p) for s in self.specs for p in range(s.partitions)]
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        for tp in parts:
            await self.consumer.position(tp)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def until(self, spec: TopicSpec, model: type[M], wanted: Callable[[M], bool]) -> M:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            for raw in self.seen[spec.name]:
                event = model.model_validate_json(raw)
                if wanted(event):
                    return event
            for tp, records in (await self.consumer.getmany(timeout_ms=300)).items():
                self.seen[tp.topic].extend(r.value or b"" for r in records)
        raise AssertionError(f"nothing wanted on {spec.name} within {TIMEOUT_S} s")


def person(name: str, n: int, timeframe: int) -> bytes:
    """An inquiry of one person (same e-mail every time), `n` makes it a new one."""
    body = inquiry(
        inquiry_id=f"{name}-{n}-{uuid.uuid4().hex[:6]}",
        received_at=utcnow().isoformat(),
        contact={
            "first_name": name.title(),
            "last_name": "Returning",
            "email": f"{name}@returning-{name}.de",
            "company": f"{name.title()} Maschinenbau GmbH",
            "country": "DE",
            "postal_code": "20095",
        },
        answers={"purchase_timeframe_months": timeframe},
    )
    return json.dumps(body).encode()


def of(name: str) -> Callable[[Any], bool]:
    email = f"{name}@returning-{name}.de"

    def wanted(event: Any) -> bool:
        payload = event.payload
        q = getattr(payload, "qualification", payload)
        return bool(q.profile.contact.email == email)

    return wanted


def for_lead(lead: uuid.UUID) -> Callable[[OutcomeRecorded], bool]:
    return lambda event: event.lead_id == lead


async def crm(t: Tenant, lead: uuid.UUID, outcome: str, n: int, amount: float | None) -> None:
    body = CrmOutcome(
        outcome_id=f"ret-{lead}-{outcome}-{n}",
        lead_id=lead,
        occurred_at=utcnow(),
        outcome=outcome,  # type: ignore[arg-type]
        amount_eur=amount,
    )
    await publish(
        t.settings.kafka_bootstrap,
        t.topics.feedback.name,
        [body.model_dump_json().encode()],
        key=str(lead).encode(),
    )


def test_a_customer_asking_again_is_an_upsell_and_a_lost_lead_is_decided_afresh(
    tenant: Tenant,
) -> None:
    t = tenant
    topics = t.topics

    async def scenario() -> dict[str, Any]:
        async with Watch(
            t, topics.sales_ready, topics.handoff, topics.qualified, topics.nurture, topics.outcomes
        ) as watch:
            # cycle 1: both hot, both go to sales; the CRM wins one and loses the other
            await publish(
                t.settings.kafka_bootstrap,
                topics.inquiries.name,
                [person("wiebke", 1, 0), person("lars", 1, 0)],
            )
            won = await watch.until(topics.sales_ready, LeadAssigned, of("wiebke"))
            lost = await watch.until(topics.sales_ready, LeadAssigned, of("lars"))
            await crm(t, won.lead_id, "won", 1, 10000.0)
            await crm(t, lost.lead_id, "lost", 1, None)
            for lead in (won.lead_id, lost.lead_id):
                await watch.until(topics.outcomes, OutcomeRecorded, for_lead(lead))
            # cycle 2: the customer asks again (not in a hurry), the lost lead comes back
            await publish(
                t.settings.kafka_bootstrap,
                topics.inquiries.name,
                [person("wiebke", 2, 12), person("lars", 2, 12)],
            )

            def second(e: Any) -> bool:
                return bool(e.payload.qualification.cycle == 2)

            handoff = await watch.until(
                topics.handoff, LeadHandedOff, lambda e: of("wiebke")(e) and second(e)
            )
            upsell = await watch.until(
                topics.sales_ready, LeadAssigned, lambda e: of("wiebke")(e) and second(e)
            )
            again = await watch.until(
                topics.qualified,
                LeadQualified,
                lambda e: e.lead_id == lost.lead_id and e.payload.cycle == 2,
            )
            decided: LeadAssigned | LeadNurtured = (
                await watch.until(
                    topics.nurture, LeadNurtured, lambda e: e.trace_id == again.trace_id
                )
                if again.payload.decision != "sales"
                else await watch.until(
                    topics.sales_ready, LeadAssigned, lambda e: e.trace_id == again.trace_id
                )
            )
            # the upsell is won too: a second deal of the same lead
            await crm(t, won.lead_id, "won", 2, 5000.0)
            await watch.until(
                topics.outcomes,
                OutcomeRecorded,
                lambda e: e.lead_id == won.lead_id and e.payload.cycle == 2,
            )
        return {
            "won": won,
            "lost": lost,
            "handoff": handoff,
            "upsell": upsell,
            "again": again,
            "decided": decided,
        }

    got = asyncio.run(scenario())
    won, upsell, handoff = got["won"], got["upsell"], got["handoff"]
    assert handoff.lead_id == won.lead_id and handoff.payload.deal == "upsell"
    assert upsell.lead_id == won.lead_id and upsell.trace_id == handoff.trace_id
    assert upsell.payload.owner == won.payload.owner  # the rep who won the customer
    assert (upsell.payload.assigned_by, upsell.payload.deal) == ("account_owner", "upsell")
    q = upsell.payload.qualification
    assert (q.cycle, q.prior_outcome, q.decision) == (2, "won", "sales")
    again = got["again"]
    assert (again.payload.prior_outcome, again.payload.iteration) == ("lost", 1)
    assert got["decided"].lead_id == got["lost"].lead_id

    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        [money] = get_json(t.settings, "/v1/reports/money?by=all")["rows"]
        if money["won"] == 2:
            break
        time.sleep(0.5)
    assert (money["lead"], money["won"], money["revenue_eur"]) == (2, 2, 15000.0)
    rows = get_json(t.settings, "/v1/reports/performance?by=rep")["rows"]
    assert sum(r["won"] for r in rows) == 2 and sum(r["revenue_eur"] for r in rows) == 15000.0
