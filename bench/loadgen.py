"""Load generator: realistic inquiries and activities at a fixed rate or flat out.

    .venv/bin/python -m bench.loadgen --leads 10000 [--rate 500] [--activities 5] [--prefix P]

The mix comes from the demo traffic (`pipeline.dev.traffic`: eight channels,
campaigns, German and foreign addresses, company and free-mail addresses) with
20 % duplicates (re-sent by their channel, same inquiry id) and 5 % invalid
inquiries; every valid lead gets five tracked activities (`leads.activity`,
keyed and addressed by its `lead_id`), published a little after its inquiry as
tracking tools would. Each message's send time is kept per inquiry trace, so a
watcher can measure speed-to-lead. Prints what it sent; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from pipeline.adapters.kafka.security import Broker, client_options
from pipeline.config.topics import Topics
from pipeline.dev.traffic import demo_inquiries
from pipeline.domain.capture.inquiry import inquiry_key, lead_id_for
from pipeline.domain.messages import Position
from schemas.envelope import derive_id
from schemas.inquiry import Inquiry

DUPLICATE_SHARE = 0.20
INVALID_SHARE = 0.05
ACTIVITIES_PER_LEAD = 5
ACTIVITY_MIX: list[tuple[str, float]] = [
    ("page_view", 0.40),
    ("email_opened", 0.25),
    ("email_clicked", 0.15),
    ("webinar_attended", 0.08),
    ("replied", 0.06),
    ("meeting_booked", 0.03),
    ("price_request", 0.03),
]
ACTIVITY_DELAY = 50
"""A lead's activities go out after this many later inquiries (they follow the inquiry)."""


@dataclass(frozen=True)
class Message:
    topic: str
    value: bytes
    key: bytes | None = None
    trace: str | None = None
    """The trace id of the valid inquiry this message is (or is an activity of): what the
    watcher matches."""


@dataclass
class Load:
    """The messages of one run, in send order, and what to expect of them."""

    messages: list[Message]
    inquiries: int
    valid: set[str] = field(default_factory=set)
    """Trace ids of the distinct valid inquiries (duplicates share their original's)."""
    invalid: int = 0
    duplicates: int = 0
    activities: int = 0


def build_load(
    topics: Topics, leads: int, activities: int = ACTIVITIES_PER_LEAD, seed: int = 21
) -> Load:
    """`leads` inquiries (with duplicates and invalid ones) and their activities."""
    rng = random.Random(seed)
    run = f"{uuid.uuid4().hex[:8]}-"
    demo = demo_inquiries(
        leads, seed=seed, run=run, invalid_share=INVALID_SHARE, duplicate_share=DUPLICATE_SHARE
    )
    load = Load(messages=[], inquiries=len(demo))
    pending: list[list[Message]] = []
    for n, message in enumerate(demo):
        trace = None
        if message.kind == "invalid":
            load.invalid += 1
        elif message.kind == "duplicate":
            load.duplicates += 1
        try:
            inquiry = Inquiry.model_validate_json(message.value)
            key = inquiry_key(inquiry, Position("", 0, 0))  # ids come from the inquiry_id
            trace = str(derive_id("trace", key))
        except ValidationError:
            inquiry = None
        load.messages.append(Message(topics.inquiries.name, message.value, None, trace))
        if inquiry is not None and message.kind == "valid" and trace is not None:
            load.valid.add(trace)
            lead = lead_id_for(key)
            pending.append(_activities(topics, lead, trace, f"{run}{n}", activities, rng))
        if len(pending) > ACTIVITY_DELAY or n == len(demo) - 1:
            for batch in pending[: None if n == len(demo) - 1 else 1]:
                load.messages.extend(batch)
                load.activities += len(batch)
            pending = [] if n == len(demo) - 1 else pending[1:]
    return load


def _activities(
    topics: Topics, lead: uuid.UUID, trace: str, ref: str, count: int, rng: random.Random
) -> list[Message]:
    start = datetime.now(UTC)
    kinds = [k for k, _ in ACTIVITY_MIX]
    weights = [w for _, w in ACTIVITY_MIX]
    return [
        Message(
            topics.activity.name,
            orjson.dumps(
                {
                    "activity_id": f"act-{ref}-{i}",
                    "occurred_at": (start + timedelta(seconds=i)).isoformat(),
                    "activity_type": rng.choices(kinds, weights)[0],
                    "lead_id": str(lead),
                    "details": {"url": "/pricing"} if i == 0 else {},
                }
            ),
            str(lead).encode(),
            trace,
        )
        for i in range(count)
    ]


async def produce(
    bootstrap: Broker,
    load: Load,
    rate: float,
    sent: Callable[[Message, float], None] = lambda m, t: None,
) -> float:
    """Send every message; `rate` inquiries per second (their activities on top), 0 = flat out.

    `sent(message, wall_time)` is called as each message is handed to the producer.
    Returns the seconds it took until the broker acknowledged the last one.
    """
    producer = AIOKafkaProducer(
        **client_options(bootstrap), acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        started = time.perf_counter()
        futures = []
        inquiries = 0
        for message in load.messages:
            if message.topic.endswith("inquiries"):
                inquiries += 1
                if rate > 0:
                    lead_time = started + inquiries / rate - time.perf_counter()
                    if lead_time > 0.001:
                        await asyncio.sleep(lead_time)
            sent(message, time.time())
            futures.append(await producer.send(message.topic, message.value, key=message.key))
            if len(futures) >= 5000:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


def main() -> None:
    from pipeline.adapters.kafka.admin import apply_topics
    from pipeline.config.settings import load_settings
    from pipeline.config.topics import load_topics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=0.0, help="inquiries per second; 0 = max")
    parser.add_argument("--activities", type=int, default=ACTIVITIES_PER_LEAD)
    parser.add_argument("--prefix", default="", help="topic prefix (LEADFLOW_TOPIC_PREFIX)")
    args = parser.parse_args()
    settings = load_settings(topic_prefix=args.prefix) if args.prefix else load_settings()
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    asyncio.run(apply_topics(settings.kafka, [topics.inquiries, topics.activity]))
    load = build_load(topics, args.leads, args.activities)
    seconds = asyncio.run(produce(settings.kafka, load, args.rate))
    print(
        f"sent {load.inquiries} inquiries ({len(load.valid)} distinct valid, "
        f"{load.duplicates} duplicates, {load.invalid} invalid) and {load.activities} "
        f"activities in {seconds:.1f} s = {load.inquiries / seconds:,.0f} inquiries/s, "
        f"{len(load.messages) / seconds:,.0f} messages/s"
    )


if __name__ == "__main__":
    main()
