"""Durable re-qualification timers through the real broker, across a worker restart."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from pipeline.config.settings import SHIPPED_RULES
from pipeline.config.topics import load_topics
from pipeline.dev.harness import WorkerProcess
from tests.support.pipeline import Pipeline
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration
MAX_ITERATIONS = 4


def test_timed_re_qualification_survives_a_restart_and_retires_the_lead(
    kafka: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(SHIPPED_RULES, rules)
    scoring = (rules / "scoring.yaml").read_text()
    scoring = scoring.replace("max_iterations: 8", f"max_iterations: {MAX_ITERATIONS}")
    scoring = scoring.replace("requalify_every_days: 7", "requalify_every_days: 0.00004")  # ~3.5 s
    (rules / "scoring.yaml").write_text(scoring)
    settings = isolated_settings(kafka, tmp_path).model_copy(
        update={"rules_dir": rules, "requalify_scan_seconds": 0.5}
    )
    pipeline = Pipeline(settings, load_topics(settings.topics_file, settings.topic_prefix))
    body, lead = pipeline.inquiry(
        f"timer-{uuid.uuid4().hex[:4]}", answers={"purchase_timeframe_months": 12}
    )

    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        pipeline.send(pipeline.topics.inquiries, body)
        (first,) = pipeline.wait_for(pipeline.topics.qualified, lead)
        assert (first.payload.decision, first.payload.iteration) == ("nurture", 1)
    finally:
        worker.stop()

    # the due time and the count live in the table's changelog, not in the process
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        qualified = pipeline.wait_for(
            pipeline.topics.qualified,
            lead,
            until=lambda found: found[-1].payload.decision == "retire",
        )
    finally:
        worker.stop()
    retired = qualified[-1].payload
    assert [q.payload.iteration for q in qualified] == [1, MAX_ITERATIONS]
    assert (retired.status, retired.trigger) == ("retired", "interval")
