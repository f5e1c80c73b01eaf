"""How long does `leadflow import` take for a 100,000-row fair list?

Prints the figures; asserts nothing. Needs the local broker
(`leadflow kafka up`); publishes to topics under a fresh `bench<id>.` prefix.

    LEADFLOW_KAFKA_BOOTSTRAP=127.0.0.1:9092 .venv/bin/python bench/import_bench.py [ROWS]
"""

from __future__ import annotations

import asyncio
import csv
import io
import sys
import time
import uuid

from pipeline.bulk_import import csv_table, file_id, read_rows, summarise
from pipeline.kafka_admin import apply_topics
from pipeline.plausibility import Plausibility, PostalTable
from pipeline.runtime import publish
from pipeline.settings import load_settings
from pipeline.topics import load_topics


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


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    settings = load_settings(topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    asyncio.run(apply_topics(settings.kafka_bootstrap, [topics.inquiries]))
    data = fair_list(rows)
    policy = Plausibility(settings.default_region, PostalTable.shipped())
    started = time.perf_counter()
    parsed = list(read_rows(csv_table(data), file_id(data), "trade_fair", "bench", {}, policy))
    checked = time.perf_counter()
    asyncio.run(publish(settings.kafka_bootstrap, topics.inquiries.name, [r.value for r in parsed]))
    published = time.perf_counter()
    summary = summarise(parsed)
    print(f"rows: {rows}, accepted {summary.accepted}, rejected {summary.rejected}")
    print(f"read + validate: {checked - started:.1f} s")
    print(f"publish (acks=all): {published - checked:.1f} s")
    print(f"total: {published - started:.1f} s ({rows / (published - started):,.0f} rows/s)")


if __name__ == "__main__":
    main()
