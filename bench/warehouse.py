"""Warehouse: the sink's insert rate and every report over 10 million events (chdb).

    .venv/bin/python -m bench.warehouse [--events 10000000] [--template FILE] [--data DIR]

The events are the pipeline's own: a template warehouse filled by a real
worker (`--template`, e.g. the one `bench.e2e` keeps; without it a short
pipeline run makes one), copied in SQL with fresh event, lead and trace ids
and dates spread over a year until the table holds `--events` rows. So the
rows have the schema, payloads and event mix the worker writes today.

`--data DIR` keeps the template and the generated warehouse in DIR: a later
run over the same DIR skips the pipeline run, the sink and the generation and
times the reports at once (opening the warehouse first applies any migration
the code has and DIR has not: an upgrade over 10 M events, timed as `upgrade`).

- sink: the rows of the template as the sink builds them (`event_row`) and
  inserts them (`EmbeddedWarehouse.insert`, batches of LEADFLOW_SINK_BATCH_SIZE);
- reports: every report registered in `pipeline.reporting.reports.REPORTS` (so a new
  report is measured without editing this file), run as `leadflow report
  NAME` runs it: its first run and the best of the next ones (up to three,
  fewer for a slow report).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import loadavg
from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, Warehouse, open_warehouse
from pipeline.config.rules import load_rules
from pipeline.config.settings import Settings, load_settings
from pipeline.config.topics import load_topics
from pipeline.domain.messages import Position
from pipeline.reporting import events as reporting
from pipeline.reporting.reports import (
    REPORTS,
    ReportInputs,
    parse_params,
    report_inputs,
    run_report,
)

ID_COLUMNS = ("event_id", "lead_id", "trace_id")
TIME_COLUMNS = ("occurred_at", "emitted_at")
COPIES_PER_INSERT = 8
REPEATS = 4
REPORT_BUDGET_S = 30.0
"""A report is run up to REPEATS times, fewer once it has taken this long in all."""


def report_inputs_of(settings: Settings) -> ReportInputs:
    """What the worker passes its reports, for this run's topics and rules."""
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    return report_inputs(load_rules(settings.rules_dir), settings.rules_dir, topics.inquiries.name)


def columns(warehouse: Warehouse) -> list[str]:
    database, table = EVENTS_TABLE.split(".")
    rows = warehouse.query(
        f"SELECT name FROM system.columns WHERE database = '{database}' AND table = '{table}' "
        "ORDER BY position"
    )
    return [r["name"] for r in rows]


def multiply(warehouse: Warehouse, target: int) -> tuple[int, float]:
    """Copy the template rows with new ids until the table holds `target` rows."""
    present = set(columns(warehouse))
    replace = [
        f"if(isNull({c}), NULL, reinterpretAsUUID(MD5(concat(toString({c}), toString(copy)))))"
        f" AS {c}"
        for c in ID_COLUMNS
        if c in present
    ] + [f"{c} + toIntervalDay(copy % 365) AS {c}" for c in TIME_COLUMNS if c in present]
    template = _count(warehouse)
    warehouse.execute(f"CREATE TABLE IF NOT EXISTS {EVENTS_TABLE}_template AS {EVENTS_TABLE}")
    warehouse.execute(f"INSERT INTO {EVENTS_TABLE}_template SELECT * FROM {EVENTS_TABLE}")
    started = time.perf_counter()
    copy = 1
    while _count(warehouse) < target:
        copies = min(COPIES_PER_INSERT, -(-(target - _count(warehouse)) // template))
        warehouse.execute(
            f"INSERT INTO {EVENTS_TABLE} SELECT * EXCEPT (copy) REPLACE ({', '.join(replace)}) "
            f"FROM {EVENTS_TABLE}_template, "
            f"(SELECT number + {copy} AS copy FROM numbers({copies})) AS copies"
        )
        copy += copies
    warehouse.execute(f"DROP TABLE {EVENTS_TABLE}_template")
    return _count(warehouse), time.perf_counter() - started


def topic_prefix(warehouse: Warehouse, events: Path) -> str:
    """The prefix of the topics the template's worker used (reports filter by topic name)."""
    base = load_topics(load_settings().topics_file).inquiries.name
    for row in warehouse.query(f"SELECT DISTINCT topic FROM file('{events}', Native)"):
        topic = str(row["topic"])
        if topic.endswith(base):
            return topic[: -len(base)]
    return ""


def _count(warehouse: Warehouse) -> int:
    return int(warehouse.query(f"SELECT count() AS n FROM {EVENTS_TABLE}")[0]["n"])


def sink_rate(settings: Settings, warehouse: Warehouse, events: Path) -> dict[str, Any]:
    """Build the sink's rows from the stored messages and insert them, as the sink does."""
    topics = {
        spec.name: spec for spec in load_topics(settings.topics_file, settings.topic_prefix).all()
    }
    stored = warehouse.query(
        f"SELECT topic, partition, offset, payload FROM file('{events}', Native)"
    )
    started = time.perf_counter()
    rows = [
        reporting.event_row(
            topics[r["topic"]],
            r["payload"].encode(),
            Position(r["topic"], r["partition"], r["offset"]),
        )
        for r in stored
    ]
    built = time.perf_counter() - started
    batch = settings.sink_batch_size
    started = time.perf_counter()
    for n in range(0, len(rows), batch):
        warehouse.insert(EVENTS_TABLE, rows[n : n + batch])
    inserted = time.perf_counter() - started
    size = sum(len(r["payload"]) for r in rows) / max(1, len(rows))
    return {
        "rows": len(rows),
        "avg_payload_bytes": round(size),
        "event_row_per_s": round(len(rows) / built),
        "insert_per_s": round(len(rows) / inserted),
        "sink_per_s": round(len(rows) / (built + inserted)),
        "batch": batch,
        "loadavg": loadavg(),
    }


def time_reports(warehouse: Warehouse, inputs: ReportInputs) -> dict[str, Any]:
    """Every report of `pipeline.reporting.reports.REPORTS`, as `leadflow report NAME` runs it."""
    results: dict[str, Any] = {}
    for name in REPORTS:
        try:
            timings: list[float] = []
            while len(timings) < REPEATS and sum(timings) < REPORT_BUDGET_S:
                started = time.perf_counter()
                rows = run_report(warehouse, name, parse_params({}), inputs)
                timings.append(time.perf_counter() - started)
            results[name] = {
                "first_s": round(timings[0], 3),
                "best_s": round(min(timings[1:] or timings), 3),
                "runs": len(timings),
                "rows": len(rows) if hasattr(rows, "__len__") else None,
                "loadavg": loadavg(),
            }
        except Exception as exc:  # a report that fails is a figure too, not a crash
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        print(f"report {name}: {results[name]}", flush=True)
    return results


def run(
    events: int = 10_000_000, template: Path | None = None, data: Path | None = None
) -> dict[str, Any]:
    """`template`: a worker's rows in Native format (`bench.e2e` keeps one); else one is made.
    `data`: where the template and the warehouse are kept (a temporary directory without)."""
    with tempfile.TemporaryDirectory(prefix="leadflow-bench-warehouse-") as work:
        base = data or Path(work)
        base.mkdir(parents=True, exist_ok=True)
        if template is None:
            template = base / "events.native"
            if not template.exists():
                from bench.e2e import run as pipeline_run

                pipeline_run(seconds=5, max_leads=2000, keep_events=template)
        settings = load_settings(warehouse_dir=base / "warehouse", clickhouse_url=None)
        started = time.perf_counter()
        warehouse = open_warehouse(settings)
        results: dict[str, Any] = {"upgrade": {"seconds": round(time.perf_counter() - started, 1)}}
        try:
            settings = settings.model_copy(
                update={"topic_prefix": topic_prefix(warehouse, template)}
            )
            if _count(warehouse) < events:
                results["sink"] = sink_rate(settings, warehouse, template)
                print(f"sink: {results['sink']}", flush=True)
                template_rows = _count(warehouse)
                rows, seconds = multiply(warehouse, events)
                results["generated"] = {
                    "template_rows": template_rows,
                    "rows": rows,
                    "seconds": round(seconds, 1),
                    "rows_per_s": round((rows - template_rows) / seconds),
                    "loadavg": loadavg(),
                }
                print(f"generated: {results['generated']}", flush=True)
            else:
                results["generated"] = {"rows": _count(warehouse), "kept_in": str(base)}
                print(f"kept: {results['generated']} {results['upgrade']}", flush=True)
            results["reports"] = time_reports(warehouse, report_inputs_of(settings))
        finally:
            warehouse.close()
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--template", type=Path, help="a worker's rows in Native format")
    parser.add_argument(
        "--data", type=Path, help="keep the template and the warehouse here; reuse them next time"
    )
    args = parser.parse_args()
    run(args.events, args.template, args.data)


if __name__ == "__main__":
    main()
