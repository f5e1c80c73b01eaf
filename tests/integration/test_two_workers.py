"""Two workers in one group: the win model and the company history are one,
whichever worker owns a lead (each worker mirrors every partition's shard)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from pipeline.config.settings import load_settings
from pipeline.config.topics import load_topics
from pipeline.dev.harness import WorkerProcess
from schemas.envelope import utcnow
from tests.support.pipeline import TIMEOUT_S, Pipeline
from tests.support.settings import free_port, tenant

pytestmark = pytest.mark.integration


def test_every_worker_sees_the_whole_win_model(kafka: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    common = {
        "kafka_bootstrap": kafka,
        "topic_prefix": f"two{run}.",
        "app_id": f"leadflow-two-{run}",
        "log_format": "json",
        "sink_flush_seconds": 0.3,
    }
    workers = []
    for name in ("w1", "w2"):
        (tmp_path / name).mkdir()
        settings = tenant(load_settings(state_dir=tmp_path / name, web_port=free_port(), **common))
        workers.append(WorkerProcess(settings, tmp_path / f"{name}.log"))
    pipeline = Pipeline(
        workers[0].settings, load_topics(workers[0].settings.topics_file, f"two{run}.")
    )
    topics = pipeline.topics
    try:
        for worker in workers:
            worker.start()
        warm_up, deadline = 0, time.monotonic() + TIMEOUT_S
        while not all(_has_work(w) for w in workers):  # until the group has rebalanced
            assert time.monotonic() < deadline, "the second worker never got partitions"
            body, _ = pipeline.inquiry(f"warm{warm_up}")
            pipeline.send(topics.inquiries, body)
            warm_up += 1
            time.sleep(0.5)
        closed = []
        for n in range(20):
            industry = "IT" if n % 2 else "Retail"
            won = (industry == "IT") != (n % 8 in (0, 1))  # IT won 7 of 10, Retail 3 of 10
            body, lead = pipeline.inquiry(
                f"deal{n}", answers={"industry": industry, "purchase_timeframe_months": 12}
            )
            pipeline.send(topics.inquiries, body)
            closed.append((lead, "won" if won else "lost"))
        for lead, _ in closed:
            pipeline.wait_for(topics.qualified, lead)
        for n, (lead, result) in enumerate(closed):
            outcome = {
                "outcome_id": f"{run}-{n}",
                "lead_id": lead,
                "occurred_at": utcnow().isoformat(),
                "outcome": result,
            }
            pipeline.send(topics.feedback, outcome, key=lead.encode())

        deadline = time.monotonic() + TIMEOUT_S
        seen: list[float | None] = []
        n = 0
        while len([p for p in seen if p is not None]) < 12 and time.monotonic() < deadline:
            body, lead = pipeline.inquiry(
                f"new{n}", answers={"industry": "IT", "purchase_timeframe_months": 12}
            )
            pipeline.send(topics.inquiries, body)
            (event,) = pipeline.wait_for(topics.qualified, lead)
            seen.append(event.payload.win_probability)
            n += 1
    finally:
        for worker in workers:
            worker.stop()
    known = [p for p in seen if p is not None]
    assert len(known) >= 12 and set(known) == {0.6667}  # the whole model, on either worker


def _has_work(worker: WorkerProcess) -> bool:
    return '"stage": "qualify"' in Path(worker.log_file).read_text()
