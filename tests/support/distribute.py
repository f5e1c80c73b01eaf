"""A tenant whose worker routes by its own rules (ROUTING: a queue per case the
distribute tests need), hand-offs built for it, and a consumer at a topic's end."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr

from pipeline.adapters.kafka.security import client_options
from pipeline.config.settings import SHIPPED_RULES, Settings
from pipeline.config.topics import Topics, TopicSpec, load_topics
from pipeline.domain.distribute.routing import RoutingRules
from pipeline.domain.nurture.programs import NurtureState, gate
from pipeline.domain.qualify.scoring import qualify_lead
from schemas.lead import LeadHandedOff
from tests.support.factories import NOW, enriched
from tests.support.routing import DAY, NURTURE, SCORING
from tests.support.settings import isolated_settings

ROUTING = """
default_queue: everyone
sla_minutes: 600                  # only the `fast` queue's leads breach during the tests
sla_reminder_minutes: 2
regions:
  berlin: {country: [DE], postal_code: ["10000-14999"]}
queues:
  everyone:
    manager: {id: boss, name: Boss, email: boss@x.example}
    reps:
      - id: away
        name: Away
        email: away@x.example
        out_of_office: [{start: 2000-01-01, end: 2999-12-31}]
      - {id: one, name: One, email: one@x.example}
      - {id: two, name: Two, email: two@x.example}
  berlin:
    reps:
      - {id: bea, name: Bea, email: bea@x.example}
  capped:
    manager: {id: cap-boss, name: Cap Boss, email: cap-boss@x.example}
    reps:
      - {id: solo, name: Solo, email: solo@x.example, max_open: 1}
  pool:
    mode: pull
    reps:
      - {id: p1, name: P1, email: p1@x.example}
      - {id: p2, name: P2, email: p2@x.example}
  fast:
    sla_minutes: 5
    manager: {id: fast-boss, name: Fast Boss, email: fast-boss@x.example}
    reps:
      - {id: f1, name: F1, email: f1@x.example}
      - {id: f2, name: F2, email: f2@x.example}
rules:
  - {name: swiss-fast-lane, queue: fast, when: {country: [CH]}}
  - {name: luxembourg-pool, queue: pool, when: {country: [LU]}}
  - {name: austria, queue: capped, when: {country: [AT]}}
  - {name: berlin-by-postal-code, queue: berlin, when: {region: [berlin]}}
"""


SLA_MINUTE_S = 0.6  # the default 5-minute SLA lasts 3 s here
OUTCOME_WAIT_S = 3.0  # an outcome for a lead with no owner is rejected after this


class Env:
    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.settings, self.topics = settings, topics


def distribute_env(kafka: str, state: Path) -> Env:
    """A fresh tenant whose worker routes by ROUTING."""
    rules = state / "rules"
    shutil.copytree(SHIPPED_RULES, rules)
    (rules / "routing.yaml").write_text(ROUTING)
    RoutingRules.model_validate(yaml.safe_load(ROUTING))  # a typo here fails fast
    settings = isolated_settings(kafka, state).model_copy(
        update={
            "rules_dir": rules,
            "sla_minute_seconds": SLA_MINUTE_S,
            "outcome_wait_seconds": OUTCOME_WAIT_S,
            "claim_keys": {"p1": SecretStr("key-p1"), "p2": SecretStr("key-p2")},
        }
    )
    return Env(settings, load_topics(settings.topics_file, settings.topic_prefix))


def handoff(n: int, postal_code: str | None = None, country: str = "DE") -> LeadHandedOff:
    contact = {"email": f"lead{n}@firma{n}.de", "country": country, "postal_code": postal_code}
    lead = enriched(
        inquiry_id=f"dist-{n}-{time.time_ns()}",
        contact=contact,
        answers={"purchase_timeframe_months": 0},
    )
    _, result = gate(qualify_lead(lead, SCORING), NurtureState(), NURTURE, NOW, DAY)
    assert isinstance(result, LeadHandedOff)
    return result


async def at_end(env: Env, spec: TopicSpec) -> AIOKafkaConsumer:
    """A started consumer on every partition of `spec`, positioned at its end now."""
    consumer = AIOKafkaConsumer(**client_options(env.settings.kafka))
    await consumer.start()
    parts = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for tp in parts:
        await consumer.position(tp)
    return consumer
