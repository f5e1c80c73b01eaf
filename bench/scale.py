"""What one worker costs as the leads it holds grow: per chunk, CPU per lead and idle.

    .venv/bin/python -m bench.scale [--chunk 1000] [--max-leads 50000] [--activities 5]
                                    [--idle 20] [--minutes 0]

Starts one `leadflow worker` (own topics, groups, state directory and port on
the local broker), then feeds it chunks of `--chunk` inquiries with
`--activities` activities each (the load generator's mix, flat out) until it
holds `--max-leads` leads (or `--minutes` have passed, 0: no limit). A
simulated CRM answers each chunk's sales-ready leads (contact, then won or lost,
as `make demo`), so SLA clocks stop as they would with sales at work. After each
chunk has been processed and answered it waits until the worker's log has been
quiet for 5 s, then measures `--idle` seconds with no input, and prints:

- leads held (inquiries fully processed so far),
- worker CPU per lead of that chunk (ms),
- idle worker CPU (% of one core, over the idle wait: timers and the rest),
- resident memory (MiB) and the state directory's size (MiB),
- Kafka messages written per lead of that chunk (every topic of the run, the
  tables' changelogs too).

A cost that grows with what the worker holds shows as CPU per lead or idle CPU
rising from chunk to chunk. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from bench.common import bench_settings, cpu_seconds, loadavg
from bench.e2e import WORKER_READY_S, run_phase
from bench.loadgen import ACTIVITIES_PER_LEAD
from pipeline.adapters.kafka.admin import apply_topics
from pipeline.adapters.kafka.erasure import topic_partitions
from pipeline.adapters.kafka.reader import KafkaReader
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics, load_topics
from pipeline.dev.harness import OutcomeWatcher, WorkerProcess
from pipeline.entrypoints.demo import answer_as_crm


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def size_mib(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 2**20


async def messages_written(settings: Settings) -> int:
    """Every message the run's topics (its own prefix, its changelogs) have held."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = [
            n for n in await admin.list_topics()
            if n.startswith((settings.topic_prefix, settings.app_id))
        ]  # fmt: skip
        parts = await topic_partitions(admin, names)
    finally:
        await admin.close()
    async with KafkaReader(settings.kafka, parts, "read_uncommitted") as reader:
        return sum((await reader.end_offsets()).values())


async def chunk_answered(
    settings: Settings, topics: Topics, chunk: int, activities: int, seed: int, pid: int,
    stall: float,
) -> tuple[dict[str, Any], int]:  # fmt: skip
    """One chunk flat out, then a simulated CRM's answers (`make demo`'s: contact,
    then won or lost) to its sales-ready leads, as sales would give them. Without
    them no clock stops: every lead would be escalated and reassigned for ever,
    and the idle figure would measure that, not what the worker holds."""
    watcher = OutcomeWatcher(settings.kafka, topics)  # from the end: this chunk only
    await watcher.start()
    try:
        result = await run_phase(
            settings, topics, chunk, 0, activities, seed=seed, worker=pid, stall=stall
        )
        quiet = 0
        while quiet < 3:  # read to the end: three polls in a row bring nothing new
            before = len(watcher.outcomes.sales_ready)
            await watcher.poll(timeout_ms=500)
            quiet = quiet + 1 if len(watcher.outcomes.sales_ready) == before else 0
        answered = await answer_as_crm(settings.kafka, topics, watcher.outcomes)
    finally:
        await watcher.stop()
    return result, answered


def wait_quiet(log: Path, quiet: float = 5.0, timeout: float = 300.0) -> None:
    """Until the worker's log has not grown for `quiet` seconds: every stage logs each
    event it emits, so the answers' own work (re-qualification, nurture, the clocks)
    is done and the idle wait measures the worker at rest."""
    size, since, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = log.stat().st_size
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.5)


def idle_share(pid: int, seconds: float) -> float:
    """The share of one core the worker used while nothing came in."""
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - started)


def run(chunk: int = 1000, max_leads: int = 50_000, activities: int = ACTIVITIES_PER_LEAD,
        idle: float = 20.0, minutes: float = 0.0) -> dict[str, Any]:  # fmt: skip
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + minutes * 60 if minutes else float("inf")
    with bench_settings("scale") as settings:
        topics = load_topics(settings.topics_file, settings.topic_prefix)
        asyncio.run(apply_topics(settings.kafka, topics.all()))
        state = Path(settings.state_dir)
        with WorkerProcess(settings, state / "worker.log") as worker:
            assert worker.process is not None
            pid = worker.process.pid
            held, seed, written = 0, 100, 0
            while held < max_leads and time.monotonic() < deadline:
                seed += 1
                stall = WORKER_READY_S if held == 0 else 90.0
                r, answered = asyncio.run(
                    chunk_answered(settings, topics, chunk, activities, seed, pid, stall)
                )
                wait_quiet(state / "worker.log")  # the answers processed before the idle wait
                held += r["completed"]
                now_written = asyncio.run(messages_written(settings))
                per_lead = (now_written - written) / max(1, r["completed"])
                written = now_written
                row = {
                    "leads_held": held,
                    "chunk_completed": r["completed"],
                    "crm_answers": answered,
                    "chunk_leads_per_s": r["completed_per_s_overall"],
                    "worker_cpu_ms_per_lead": r["worker_cpu_ms_per_lead"],
                    "idle_core_pct": round(100 * idle_share(pid, idle), 2),
                    "resident_mib": round(resident_mib(pid), 1),
                    "state_mib": round(size_mib(state), 1),
                    "messages_per_lead": round(per_lead, 1),
                    "loadavg": loadavg(),
                }
                rows.append(row)
                print(describe(row), flush=True)
                if r["completed"] == 0:
                    break  # the worker is stuck: more chunks say nothing
    return {"chunk": chunk, "activities": activities, "idle_seconds": idle, "rows": rows}


def describe(row: dict[str, Any]) -> str:
    return (
        f"{row['leads_held']:>7,} leads held: {row['worker_cpu_ms_per_lead']:6.1f} ms CPU/lead, "
        f"idle {row['idle_core_pct']:5.2f} % of a core, {row['resident_mib']:7.1f} MiB resident, "
        f"state {row['state_mib']:7.1f} MiB, {row['messages_per_lead']:5.1f} messages/lead, "
        f"{row['chunk_leads_per_s']:5.1f} leads/s "
        f"[load {row['loadavg']}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=int, default=1000, help="inquiries per chunk")
    parser.add_argument("--max-leads", type=int, default=50_000, help="stop when this many held")
    parser.add_argument("--activities", type=int, default=ACTIVITIES_PER_LEAD)
    parser.add_argument("--idle", type=float, default=20.0, help="idle seconds after each chunk")
    parser.add_argument("--minutes", type=float, default=0.0, help="stop after this (0: never)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    results = run(args.chunk, args.max_leads, args.activities, args.idle, args.minutes)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
