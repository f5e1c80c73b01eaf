"""End-to-end benchmark: throughput and speed-to-lead of the whole pipeline.

    .venv/bin/python bench/pipeline.py [--leads 3000] [--rate 0]

Starts a worker as `leadflow worker` runs it (own topics, groups and state, on
the local broker, which must be up: `leadflow kafka up`), publishes demo
inquiries at `--rate` per second (0: as fast as the producer goes), and
watches the terminal topics with a read_committed consumer. Speed-to-lead is
the time from handing an inquiry to the producer until its `LeadAssigned` is
visible on `leads.sales-ready`. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer  # noqa: E402

from pipeline.capture import inquiry_key, lead_id_for  # noqa: E402
from pipeline.kafka_admin import apply_topics  # noqa: E402
from pipeline.messages import Position  # noqa: E402
from pipeline.runtime import OutcomeWatcher, WorkerProcess  # noqa: E402
from pipeline.settings import Settings, load_settings  # noqa: E402
from pipeline.topics import Topics, load_topics  # noqa: E402
from pipeline.traffic import demo_inquiries  # noqa: E402
from schemas.inquiry import Inquiry  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(settings: Settings, topics: Topics, leads: int, rate: float) -> None:
    messages = [m.value for m in demo_inquiries(leads, seed=21, run=f"{uuid.uuid4().hex[:6]}-",
                                                duplicate_share=0.0)]  # fmt: skip
    lead_of: dict[str, int] = {}  # demo inquiries carry an inquiry_id: the lead is known upfront
    for n, value in enumerate(messages):
        with contextlib.suppress(ValueError):
            inquiry = Inquiry.model_validate_json(value)
            lead_of[str(lead_id_for(inquiry_key(inquiry, Position("", 0, 0))))] = n
    watcher = OutcomeWatcher(settings.kafka_bootstrap, topics)
    await watcher.start()
    outcomes = watcher.outcomes
    sent_at: dict[int, float] = {}
    seen_at: dict[int, float] = {}
    rejected_refs: set[str] = set()
    producing = True

    async def observe() -> None:
        """Poll the terminal topics while the producer runs, stamping arrivals."""
        deadline = time.perf_counter() + 600
        while time.perf_counter() < deadline:
            await watcher.poll(timeout_ms=10)
            now = time.perf_counter()
            for lead in outcomes.sales_ready.keys() | outcomes.nurtured:
                n = lead_of.get(lead, -1)
                if n >= 0 and n not in seen_at:
                    seen_at[n] = now
            if (
                not producing
                and len(seen_at) == len(lead_of)
                and rejected_refs <= outcomes.rejected_at
            ):
                return

    observer = asyncio.create_task(observe())
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    started = time.perf_counter()
    futures = []
    for n, value in enumerate(messages):
        if rate > 0:
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        sent_at[n] = time.perf_counter()
        futures.append(await producer.send(topics.inquiries.name, value))
    records = await asyncio.gather(*futures)
    await producer.stop()
    produced = time.perf_counter()
    known = set(lead_of.values())
    rejected_refs.update(
        Position(r.topic, r.partition, r.offset).ref
        for n, r in enumerate(records)
        if n not in known
    )
    producing = False
    await observer
    finished = time.perf_counter()
    await watcher.stop()
    sales_ready = {lead_of[lead] for lead in outcomes.sales_ready if lead in lead_of}
    latencies = sorted((seen_at[n] - sent_at[n]) * 1000 for n in sales_ready if n in seen_at)
    done = len(seen_at) + len(rejected_refs & outcomes.rejected_at)
    print(f"inquiries: {leads} at {'max' if rate <= 0 else f'{rate:.0f}/s'}; accounted {done}")
    print(f"produce: {leads / (produced - started):,.0f} msg/s")
    print(f"end to end: {done / (finished - started):,.0f} leads/s ({finished - started:.1f} s)")
    if latencies:
        q = statistics.quantiles(latencies, n=100)
        print(
            f"speed-to-lead over {len(latencies)} sales-ready leads (ms): "
            f"p50 {q[49]:.0f}, p95 {q[94]:.0f}, p99 {q[98]:.0f}, max {latencies[-1]:.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=0.0, help="inquiries per second; 0 = max")
    args = parser.parse_args()
    run_id = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as state:
        settings = load_settings(
            topic_prefix=f"bench{run_id}.",
            app_id=f"leadflow-bench-{run_id}",
            state_dir=Path(state),
            web_port=free_port(),
            log_level="warning",
        )
        topics = load_topics(settings.topics_file, settings.topic_prefix)
        asyncio.run(apply_topics(settings.kafka_bootstrap, topics.all()))
        with WorkerProcess(settings, Path(state) / "worker.log"):
            asyncio.run(run(settings, topics, args.leads, args.rate))


if __name__ == "__main__":
    main()
