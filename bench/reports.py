"""How long each report takes on the embedded warehouse with many leads.

    .venv/bin/python -m bench.reports [--copies 5000]

The test scenario's six leads (tests/support/scenario.py, ~45
events) are stored `--copies` times under new ids, a minute apart, in batches
the way the sink inserts them; then every report runs once. Prints figures;
asserts nothing (timings depend on the machine).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from pipeline.adapters.warehouse.clickhouse import (
    EVENTS_TABLE,
    EmbeddedWarehouse,
    load_migrations,
    migrate,
)
from pipeline.config.rules import load_rules
from pipeline.config.settings import SHIPPED_RULES
from pipeline.reporting.reports import REPORTS, ReportInputs, ReportParams, run_report
from schemas.envelope import derive_id
from tests.support.scenario import scenario

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BATCH = 20_000


def copy_rows(rows: list[dict], k: int) -> list[dict]:  # type: ignore[type-arg]
    """The scenario again, every id replaced by a new one, `k` minutes later."""

    def new_id(match: re.Match[str]) -> str:
        return str(derive_id("bench", k, match.group(0)))

    shift = timedelta(minutes=k)
    copied = []
    for row in rows:
        new = {key: UUID.sub(new_id, v) if isinstance(v, str) else v for key, v in row.items()}
        for column in ("occurred_at", "emitted_at"):
            new[column] = (datetime.fromisoformat(row[column]) + shift).isoformat(sep=" ")[:23]
        copied.append(new)
    return copied


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=5000)
    args = parser.parse_args()
    base = scenario().rows()
    warehouse = EmbeddedWarehouse(Path(tempfile.mkdtemp(prefix="leadflow-bench-")))
    migrate(warehouse, load_migrations())
    rows = [row for k in range(args.copies) for row in copy_rows(base, k)]
    started = time.perf_counter()
    for at in range(0, len(rows), BATCH):
        warehouse.insert(EVENTS_TABLE, rows[at : at + BATCH])
    seconds = time.perf_counter() - started
    print(
        f"inserted {len(rows):,} events of {args.copies * 6:,} leads in batches of {BATCH:,}: "
        f"{seconds:.1f} s ({len(rows) / seconds:,.0f} events/s, lead_state view included)"
    )
    inputs = ReportInputs(routing=load_rules(SHIPPED_RULES).routing)
    for name in REPORTS:
        started = time.perf_counter()
        result = run_report(warehouse, name, ReportParams(), inputs)
        print(f"{name:<16} {len(result):>6} rows  {1000 * (time.perf_counter() - started):8.0f} ms")
    warehouse.close()


if __name__ == "__main__":
    main()
