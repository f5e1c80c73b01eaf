"""The benchmarks' own logic: the load they send and the reports they find.

No timings are asserted here (benchmarks print figures); these tests make sure
the load is the mix the figures claim and that every report gets measured.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from bench.common import percentiles
from bench.loadgen import ACTIVITIES_PER_LEAD, build_load
from bench.warehouse import report_inputs_of, time_reports
from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, open_warehouse
from pipeline.config.settings import load_settings
from pipeline.config.topics import load_topics
from pipeline.domain.capture.inquiry import inquiry_key, lead_id_for
from pipeline.domain.messages import Position
from pipeline.reporting.events import event_row
from pipeline.reporting.reports import REPORTS
from schemas.inputs import Activity
from schemas.inquiry import Inquiry

TOPICS = load_topics(load_settings().topics_file, "t.")


def test_the_load_has_the_promised_mix() -> None:
    load = build_load(TOPICS, 2000, seed=5)
    inquiries = [m for m in load.messages if m.topic == TOPICS.inquiries.name]
    activities = [m for m in load.messages if m.topic == TOPICS.activity.name]
    assert len(inquiries) == load.inquiries == 2000
    assert 0.16 < load.duplicates / 2000 < 0.24
    assert 0.03 < load.invalid / 2000 < 0.07
    assert len(activities) == load.activities == ACTIVITIES_PER_LEAD * len(load.valid)
    channels = {orjson.loads(m.value)["source"]["channel"] for m in inquiries if m.trace}
    assert len(channels) == 8


def test_activities_follow_their_lead_and_name_it() -> None:
    load = build_load(TOPICS, 300, seed=6)
    first_seen: dict[str, int] = {}
    for n, message in enumerate(load.messages):
        if message.topic == TOPICS.inquiries.name and message.trace in load.valid:
            inquiry = Inquiry.model_validate_json(message.value)
            lead = str(lead_id_for(inquiry_key(inquiry, Position("", 0, 0))))
            first_seen.setdefault(lead, n)
    for n, message in enumerate(load.messages):
        if message.topic == TOPICS.activity.name:
            activity = Activity.model_validate_json(message.value)
            assert message.key == str(activity.lead_id).encode()
            assert first_seen[str(activity.lead_id)] < n


def test_duplicates_repeat_an_earlier_inquiry_byte_for_byte() -> None:
    load = build_load(TOPICS, 500, seed=7)
    values = [m.value for m in load.messages if m.topic == TOPICS.inquiries.name]
    assert len(values) - len(set(values)) == load.duplicates


def test_every_registered_report_runs_with_the_run_topic_names(tmp_path: Path) -> None:
    settings = load_settings(topic_prefix="t.", warehouse_dir=tmp_path, clickhouse_url=None)
    inputs = report_inputs_of(settings)
    assert inputs.inquiries_topic == TOPICS.inquiries.name  # the run's prefix
    warehouse = open_warehouse(settings)
    try:
        inquiry = next(m for m in build_load(TOPICS, 20, seed=8).messages if m.trace)
        at = Position(TOPICS.inquiries.name, 0, 0)
        warehouse.insert(EVENTS_TABLE, [event_row(TOPICS.inquiries, inquiry.value, at)])
        timed = time_reports(warehouse, inputs)
    finally:
        warehouse.close()
    assert set(timed) == set(REPORTS)
    assert not [name for name, figures in timed.items() if "error" in figures]
    assert timed["pipeline"]["rows"] == 1  # the one inquiry's channel


def test_percentiles_of_latencies() -> None:
    p = percentiles([float(n) for n in range(1, 101)])
    assert p["p50"] == 50.5
    assert p["max"] == 100.0
    assert 99.0 <= p["p99"] <= 100.0
    assert percentiles([]) == {}
