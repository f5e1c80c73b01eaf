"""How long does `leadflow import` take for a 100,000-row fair list?

Prints the figures; asserts nothing. Needs the local broker
(`leadflow kafka up`); publishes to a topic under a fresh `bench<id>.` prefix,
deleted afterwards.

    .venv/bin/python -m bench.import_bench [ROWS]
"""

from __future__ import annotations

import asyncio
import csv
import io
import sys
import time

from bench.common import bench_settings, loadavg
from pipeline.adapters.bulk_import import csv_table, file_id, read_rows, summarise
from pipeline.adapters.kafka.admin import apply_topics
from pipeline.adapters.kafka.client import publish
from pipeline.config.reference import postal_table
from pipeline.config.topics import load_topics
from pipeline.domain.capture.plausibility import Plausibility


def fair_list(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(["Vorname", "Nachname", "E-Mail", "Telefon", "Firma", "PLZ", "Ort"])
    for n in range(rows):
        writer.writerow(
            ["Anna", "Schmidt", f"anna.{n}@firma-{n % 500}.de", f"030 {1000000 + n}",
             f"Firma {n % 500} GmbH", "10115", "Berlin"]
        )  # fmt: skip
    return out.getvalue().encode()


def run(rows: int = 100_000) -> dict[str, float | int | str]:
    """Read + validate a `rows`-line fair list, then publish it (acks=all) to a fresh topic."""
    with bench_settings("import") as settings:
        topics = load_topics(settings.topics_file, settings.topic_prefix)
        asyncio.run(apply_topics(settings.kafka, [topics.inquiries]))
        data = fair_list(rows)
        policy = Plausibility(settings.default_region, postal_table())
        load = loadavg()
        started = time.perf_counter()
        parsed = list(read_rows(csv_table(data), file_id(data), "trade_fair", "bench", {}, policy))
        checked = time.perf_counter()
        values = [r.value for r in parsed]
        asyncio.run(publish(settings.kafka, topics.inquiries.name, values))
        published = time.perf_counter()
    summary = summarise(parsed)
    return {
        "rows": rows,
        "accepted": summary.accepted,
        "rejected": summary.rejected,
        "read_validate_s": round(checked - started, 2),
        "publish_s": round(published - checked, 2),
        "total_s": round(published - started, 2),
        "rows_per_s": round(rows / (published - started)),
        "loadavg": load,
    }


def main() -> None:
    figures = run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
    print(
        f"rows: {figures['rows']}, accepted {figures['accepted']}, "
        f"rejected {figures['rejected']}\n"
        f"read + validate: {figures['read_validate_s']} s\n"
        f"publish (acks=all): {figures['publish_s']} s\n"
        f"total: {figures['total_s']} s ({figures['rows_per_s']:,} rows/s)"
    )


if __name__ == "__main__":
    main()
