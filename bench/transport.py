"""The transport's own limit, on the same broker in the same run.

    .venv/bin/python -m bench.transport [--messages 20000]

- raw aiokafka: produce (acks=all, linger 5 ms) and consume rates of
  inquiry-sized messages;
- a pass-through chain: a Faust worker with our app settings
  (`pipeline.worker.faust_app.faust_app`) and seven agents, each decoding a message
  (orjson) and encoding it again onto the next topic, no logic: the seven
  hops an inquiry takes to `leads.sales-ready` (capture, identify, enrich,
  qualify, nurture, route, distribute). Its rate (messages through all hops
  per second, read_committed at the end) is the ceiling for our pipeline.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import bench_settings, cpu_seconds, loadavg
from bench.loadgen import build_load
from pipeline.adapters.kafka.security import client_options
from pipeline.adapters.worker_api import get_json
from pipeline.config.settings import PROJECT_ROOT, Settings, load_settings
from pipeline.config.topics import TopicSpec, load_topics
from pipeline.dev.harness import settings_env
from pipeline.errors import LeadflowError

HOPS = 7
PARTITIONS = 6


def hop_topics(settings: Settings) -> list[TopicSpec]:
    return [
        TopicSpec(
            name=f"{settings.topic_prefix}pass.{n}",
            description="pass-through hop",
            partitions=PARTITIONS,
            retention_days=1,
            key="lead_id",
            value="schemas.inquiry:Inquiry",
        )
        for n in range(HOPS + 1)
    ]


def sample_values(settings: Settings, count: int) -> list[bytes]:
    """Real inquiries (the valid ones) as the payload, cycled to `count`."""
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    load = build_load(topics, 2000, activities=0)
    values = [m.value for m in load.messages if m.trace in load.valid]
    return [values[n % len(values)] for n in range(count)]


async def raw_rates(settings: Settings, values: list[bytes]) -> dict[str, Any]:
    """Plain aiokafka on one topic: produce with acks=all, then consume it all."""
    from pipeline.adapters.kafka.admin import apply_topics

    topic = hop_topics(settings)[0].model_copy(update={"name": f"{settings.topic_prefix}raw"})
    await apply_topics(settings.kafka, [topic])
    producer = AIOKafkaProducer(
        **client_options(settings.kafka), acks="all", linger_ms=5,
        max_batch_size=256 * 1024,
    )  # fmt: skip
    await producer.start()
    started = time.perf_counter()
    futures = []
    for n, value in enumerate(values):
        futures.append(await producer.send(topic.name, value, key=str(n).encode()))
    await asyncio.gather(*futures)
    produced = time.perf_counter() - started
    await producer.stop()
    consumer = AIOKafkaConsumer(
        **client_options(settings.kafka), enable_auto_commit=False,
        isolation_level="read_committed", max_poll_records=5000,
    )  # fmt: skip
    await consumer.start()
    parts = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
    consumer.assign(parts)
    await consumer.seek_to_beginning(*parts)
    started, seen = time.perf_counter(), 0
    while seen < len(values):
        for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
            seen += len(records)
    consumed = time.perf_counter() - started
    await consumer.stop()
    size = sum(len(v) for v in values) / len(values)
    return {
        "messages": len(values),
        "avg_bytes": round(size),
        "produce_per_s": round(len(values) / produced),
        "consume_per_s": round(len(values) / consumed),
        "loadavg": loadavg(),
    }


def worker() -> None:
    """The pass-through worker (a child process; settings from LEADFLOW_* variables)."""
    import faust
    from faust.web import Request, Response, View

    from pipeline.worker.faust_app import faust_app, run_worker

    settings = load_settings()
    app = faust_app(settings, PARTITIONS)
    channels = [
        app.topic(spec.name, partitions=PARTITIONS, key_serializer="raw", value_serializer="raw")
        for spec in hop_topics(settings)
    ]
    for n in range(HOPS):
        source, target = channels[n], channels[n + 1]

        async def forward(stream: faust.StreamT[bytes], target: Any = target) -> None:
            async for event in stream.events():
                value = orjson.dumps(orjson.loads(event.value or b"{}"))
                await target.send(key=event.key, value=value)

        forward.__name__ = f"hop{n}"
        app.agent(source, name=f"hop{n}")(forward)

    @app.page("/v1/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    run_worker(app, settings)


async def chain_rate(settings: Settings, values: list[bytes], worker: int) -> dict[str, Any]:
    """Flood hop 0; count arrivals on the last hop (read_committed); the worker's CPU."""
    specs = hop_topics(settings)
    consumer = AIOKafkaConsumer(
        **client_options(settings.kafka), enable_auto_commit=False,
        isolation_level="read_committed", fetch_max_wait_ms=20,
    )  # fmt: skip
    await consumer.start()
    parts = [TopicPartition(specs[-1].name, p) for p in range(PARTITIONS)]
    consumer.assign(parts)
    await consumer.seek_to_end(*parts)
    for tp in parts:
        await consumer.position(tp)
    producer = AIOKafkaProducer(**client_options(settings.kafka), acks="all",
                                linger_ms=5, max_batch_size=256 * 1024)  # fmt: skip
    await producer.start()
    load = loadavg()
    cpu = cpu_seconds(worker)
    started = time.time()
    futures = [
        await producer.send(specs[0].name, v, key=str(n).encode()) for n, v in enumerate(values)
    ]
    await asyncio.gather(*futures)
    await producer.stop()
    arrivals: list[float] = []
    last = time.time()
    while len(arrivals) < len(values) and time.time() - last < 90:
        for records in (await consumer.getmany(timeout_ms=100)).values():
            last = time.time()
            arrivals.extend([last] * len(records))
    await consumer.stop()
    cpu = cpu_seconds(worker) - cpu
    n = len(arrivals)
    return {
        "hops": HOPS,
        "messages": len(values),
        "arrived": n,
        "per_s_overall": round(n / (arrivals[-1] - started)),
        "worker_cpu_ms_per_message": round(1000 * cpu / max(1, n), 2),
        "loadavg": load,
    }


def run(messages: int = 20_000) -> dict[str, Any]:
    from pipeline.adapters.kafka.admin import apply_topics

    with bench_settings("transport") as settings:
        values = sample_values(settings, messages)
        results: dict[str, Any] = {"raw_aiokafka": asyncio.run(raw_rates(settings, values))}
        print(f"raw aiokafka: {results['raw_aiokafka']}", flush=True)
        asyncio.run(apply_topics(settings.kafka, hop_topics(settings)))
        log = settings.state_dir / "passthrough.log"
        with open(log, "ab") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "bench.transport", "worker"], cwd=PROJECT_ROOT,
                env=settings_env(settings), stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            _await_health(settings, child)
            warm = asyncio.run(chain_rate(settings, values[:500], child.pid))
            print(f"pass-through warm-up: {warm}", flush=True)
            results["passthrough"] = asyncio.run(chain_rate(settings, values, child.pid))
            print(f"pass-through chain: {results['passthrough']}", flush=True)
        finally:
            child.terminate()
            try:
                child.wait(60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return results


def _await_health(settings: Settings, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise LeadflowError(f"the pass-through worker exited (code {child.returncode})")
        try:
            get_json(settings, "/v1/health")
            return
        except OSError:
            time.sleep(0.3)
    raise LeadflowError("the pass-through worker did not answer")


def main() -> None:
    if sys.argv[1:] == ["worker"]:
        worker()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    run(args.messages)


if __name__ == "__main__":
    main()
