"""`GET /metrics` and `GET /v1/ready` on the running worker (issue 19, point 1):
Prometheus' own parser reads the page; the counters follow what the worker did
with real inquiries on the real broker, lag is there per group, topic and
partition for the stages, the sink and the mirrors, and drops to 0 once all is
stored."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families

from pipeline.adapters.kafka.client import publish
from pipeline.adapters.worker_api import wait_until_stored
from pipeline.config.settings import Settings
from tests.support.processes import started_worker

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(settings: Settings) -> tuple[Samples, str]:
    with urllib.request.urlopen(settings.web_url + "/metrics", timeout=30) as response:
        text = response.read().decode()
        content_type = response.headers["Content-Type"]
    samples: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        samples.setdefault(family.name, [])  # declared, even without samples yet
        for s in family.samples:
            samples[s.name].append((s.labels, s.value))
    return samples, content_type


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for found, v in samples[name] if labels.items() <= found.items())


def status(settings: Settings, path: str) -> int:
    try:
        with urllib.request.urlopen(settings.web_url + path, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_metrics_count_what_the_worker_did_and_readiness_waits_for_partitions(
    kafka: str, tmp_path: Path
) -> None:
    with started_worker(kafka, tmp_path) as (settings, topics, _):
        deadline = time.monotonic() + 120
        while status(settings, "/v1/ready") != 200:  # assigned and recovered
            assert time.monotonic() < deadline, "the worker never became ready"
            time.sleep(0.3)
        inquiries = [
            orjson.dumps(
                {
                    "inquiry_id": f"m-{n}",
                    "source": {"channel": "web_form", "campaign": "metrics"},
                    "contact": {"first_name": "Eva", "last_name": "Roth", "email": email},
                }
            )
            for n, email in enumerate(["eva.roth@roth-gmbh.de", "eva.roth@roth-gmbh.de"])
        ]
        broken = [b"{not json", b'{"contact": {"email": "nope"}}']
        asyncio.run(publish(kafka, topics.inquiries.name, [*inquiries, *broken]))
        deadline = time.monotonic() + 120
        samples, content_type = scrape(settings)
        while value(samples, "leadflow_stage_messages_in_total", stage="capture") < 4:
            assert time.monotonic() < deadline, "capture never saw the four inquiries"
            time.sleep(0.5)
            samples, _ = scrape(settings)
        asyncio.run(wait_until_stored(settings))
        samples, _ = scrape(settings)

    assert content_type.startswith("text/plain")
    assert value(samples, "leadflow_stage_messages_in_total", stage="capture") == 4
    assert value(samples, "leadflow_stage_messages_rejected_total", stage="capture") == 2
    emitted = "leadflow_stage_messages_emitted_total"
    assert value(samples, emitted, stage="capture", topic=topics.rejected.name) == 2
    assert value(samples, "leadflow_stage_step_seconds_count", stage="capture") == 4
    assert value(samples, "leadflow_stage_messages_in_total", stage="identify") >= 2
    # the sink stored every event and says how: batches, rows, insert latency
    assert value(samples, "leadflow_sink_rows_inserted_total") >= 4
    assert value(samples, "leadflow_sink_batch_rows_count") >= 1
    assert value(samples, "leadflow_sink_insert_seconds_count") >= 1
    assert value(samples, "leadflow_sink_halted") == 0
    # lag per group, topic and partition: stages, the sink (all stored: 0), mirrors
    lag = samples["leadflow_consumer_lag"]
    groups = {labels["group"] for labels, _ in lag}
    assert {settings.app_id, f"{settings.app_id}-warehouse", "mirror:company-history"} <= groups
    sink = [(labels, v) for labels, v in lag if labels["group"] == f"{settings.app_id}-warehouse"]
    assert {labels["topic"] for labels, _ in sink} >= {topics.inquiries.name, topics.captured.name}
    assert all(v == 0 for _, v in sink)
    inquiries_lag = [
        labels["partition"]
        for labels, _ in lag
        if labels["group"] == settings.app_id and labels["topic"] == topics.inquiries.name
    ]
    assert sorted(inquiries_lag, key=int) == [str(p) for p in range(topics.inquiries.partitions)]
    # HTTP requests by route template and status, the readiness polls among them
    assert value(samples, "leadflow_http_requests_total", route="/v1/ready", status="200") >= 1
    assert value(samples, "leadflow_http_requests_total", route="/metrics", status="200") >= 1
    # declared for the timers and the SLA clock (counted where those run)
    for name in ("leadflow_timers_held", "leadflow_timers_due", "leadflow_sla_breaches_total"):
        assert name in samples
    # the tables' RocksDB databases, all in one budget
    limit = value(samples, "leadflow_table_memory_limit_bytes")
    assert limit == settings.table_memory_mib * 2**20
    assert 0 < value(samples, "leadflow_table_memory_bytes") <= limit * 1.1
