"""A worker holding many timers reads, per scan, the due ones and one entry more per
partition, not what it holds (reads are counted by the worker, never timed)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pipeline.adapters.worker_api import get_json
from pipeline.config.settings import Settings
from tests.support.pipeline import Pipeline
from tests.support.processes import started_worker

pytestmark = pytest.mark.integration
LEADS = 40


def held(settings: Settings, timer: str, at_least: int) -> dict[str, Any]:
    """The timer's report once it holds `at_least` entries and has scanned since."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        report: dict[str, Any] = get_json(settings, f"/v1/timers/{timer}")
        if report["held_estimate"] >= at_least and report["last_scan"]:
            return report
        time.sleep(1.0)
    raise AssertionError(f"{timer} never held {at_least} entries: {report}")


def test_a_scan_reads_one_entry_per_partition_while_the_worker_holds_many(
    kafka: str, tmp_path: Path
) -> None:
    with started_worker(kafka, tmp_path) as (settings, topics, _):
        pipeline = Pipeline(settings, topics)
        tag = uuid.uuid4().hex[:4]
        bodies = [  # a year away from buying: nurtured, re-qualified in 7 days
            pipeline.inquiry(f"held-{tag}-{n}", answers={"purchase_timeframe_months": 12})[0]
            for n in range(LEADS)
        ]
        pipeline.send(topics.inquiries, *bodies)
        for timer in ("qualify-due", "nurture-due"):
            first = held(settings, timer, LEADS)
            time.sleep(2.0)  # a few more scans
            later: dict[str, Any] = get_json(settings, f"/v1/timers/{timer}")
            for report in (first, later):
                scan = report["last_scan"]
                assert scan["fired"] == 0, (timer, report)  # days away: nothing due
                assert 0 < scan["read"] <= scan["partitions"], (timer, report)
            assert later["held_estimate"] >= LEADS
            assert later["in_flight"] == 0 and later["legacy"] == 0
