"""End-to-end pipeline benchmark: sustained throughput and speed-to-lead.

    .venv/bin/python -m bench.e2e [--seconds 20] [--activities 5]

Starts `leadflow worker` as the README does (own topic prefix, consumer groups,
state directory and web port on the local broker, which must be up), then:

1. saturation: the load generator (`bench/loadgen.py`) sends inquiries and
   their activities flat out; the sustained maximum is the number of
   inquiries fully processed (answered and decided: sales-ready, kept by the
   nurture gate (`LeadNurtured`), or the answer to an excluded one) divided
   by the seconds from the first send to the last completion. (Under a
   backlog the stages work in waves, so a window over the completions alone
   would measure the last stage, not the pipeline.)
2. 10 %, 50 % and 90 % of that rate, each for `--seconds`: speed-to-lead (the
   lead's last input handed to the producer – the inquiry, or the activity
   that made it sales-ready; the load sends activities 50 inquiries later –
   → its `LeadAssigned` visible to a read_committed consumer on
   `leads.sales-ready`) p50/p95/p99/max, and the
   consumer lag (inquiries sent but not yet processed) during and at the end
   of sending – bounded lag means the rate is sustainable.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.common import bench_settings, cpu_seconds, fmt_latency, loadavg, percentiles
from bench.loadgen import ACTIVITIES_PER_LEAD, Load, Message, build_load, produce
from pipeline.adapters.kafka.admin import apply_topics
from pipeline.adapters.kafka.security import Broker
from pipeline.adapters.warehouse.clickhouse import EVENTS_TABLE, open_warehouse
from pipeline.adapters.worker_api import wait_until_stored
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics, load_topics
from pipeline.dev.harness import OutcomeWatcher, WorkerProcess, outcome_reader
from pipeline.domain.capture.exclusion import EXCLUDED
from pipeline.entrypoints.demo import answer_as_crm

STALL_SECONDS = 90.0
"""A run ends when the worker showed no progress for this long (e.g. an inquiry never completes)."""
WORKER_READY_S = 240.0
"""How long a fresh worker may take to join its group and recover its tables."""


@dataclass
class Watcher:
    """Stamps the first arrival per inquiry trace on the terminal topics (read_committed).

    Reads with orjson, not the pydantic models, so the watcher costs the
    2-core machine as little as possible.
    """

    bootstrap: Broker
    topics: Topics
    answered: dict[str, float] = field(default_factory=dict)
    decided: dict[str, float] = field(default_factory=dict)
    ready: dict[str, float] = field(default_factory=dict)
    rejected: int = 0
    last_arrival: float = 0.0
    """When anything last arrived: a busy worker still answers, rejects or decides."""

    async def run(self, started: asyncio.Event) -> None:
        async with outcome_reader(self.bootstrap, self.topics, fetch_max_wait_ms=20) as reader:
            started.set()
            while True:
                arrived = await reader.poll(timeout_ms=50)
                now = time.time()
                if arrived:
                    self.last_arrival = now
                for tp, record in arrived:
                    self._record(tp.topic, record.value or b"{}", now)

    def _record(self, topic: str, value: bytes, now: float) -> None:
        event = orjson.loads(value)
        trace = event.get("trace_id")
        if topic == self.topics.rejected.name:
            self.rejected += 1
        elif trace is None:
            return
        elif topic == self.topics.sales_ready.name:
            self.ready.setdefault(trace, now)
            self.decided.setdefault(trace, now)
        elif topic == self.topics.nurture.name:
            self.decided.setdefault(trace, now)  # the nurture gate kept it: LeadNurtured
        else:
            touch = event.get("payload") or {}
            if touch.get("purpose") == "fulfillment":
                self.answered.setdefault(trace, now)
                if str(touch.get("reason", "")).startswith(EXCLUDED):
                    self.decided.setdefault(trace, now)

    def completed(self, trace: str) -> float | None:
        """When this inquiry was fully processed: answered and decided."""
        answered, decided = self.answered.get(trace), self.decided.get(trace)
        return max(answered, decided) if answered and decided else None


async def run_phase(settings: Settings, topics: Topics, leads: int, rate: float,
                    activities: int, seed: int, worker: int, stall: float = STALL_SECONDS
                    ) -> dict[str, Any]:  # fmt: skip
    """One load at one rate (0 = flat out): completion rate, lag and speed-to-lead.

    The run ends when every inquiry is processed, or when for `stall` seconds none was
    and nothing arrived on the terminal topics (the worker is stuck, not busy).
    """
    load: Load = build_load(topics, leads, activities, seed=seed)
    watcher = Watcher(settings.kafka, topics)
    listening = asyncio.Event()
    watching = asyncio.create_task(watcher.run(listening))
    await listening.wait()
    sent_at: dict[str, float] = {}
    """When each valid inquiry was sent."""
    inputs_at: dict[str, list[float]] = {}
    """When each of its messages (the inquiry, its activities) was sent."""
    lag_samples: list[int] = []

    def sent(message: Message, at: float) -> None:
        if message.trace in load.valid:
            inputs_at.setdefault(message.trace, []).append(at)
            if message.topic == topics.inquiries.name:
                sent_at.setdefault(message.trace, at)

    def speed_to_lead(trace: str) -> float:
        """From the last input sent before the lead was ready (the inquiry, or an
        activity that raised its score) to its `LeadAssigned`, in ms."""
        ready = watcher.ready[trace]
        trigger = max((t for t in inputs_at[trace] if t <= ready), default=sent_at[trace])
        return (ready - trigger) * 1000

    def lag() -> int:
        return sum(1 for t in sent_at if watcher.completed(t) is None)

    async def sample_lag() -> None:
        while True:
            await asyncio.sleep(0.5)
            lag_samples.append(lag())

    sampler = asyncio.create_task(sample_lag())
    load_avg = loadavg()
    cpu = cpu_seconds(worker)
    first_send = time.time()
    send_seconds = await produce(settings.kafka, load, rate, sent)
    sampler.cancel()
    lag_at_end = lag()
    pending, progress_at = lag_at_end, time.time()
    while pending and time.time() - max(progress_at, watcher.last_arrival) < stall:
        await asyncio.sleep(0.25)
        if (now_pending := lag()) < pending:
            pending, progress_at = now_pending, time.time()
    cpu = cpu_seconds(worker) - cpu
    watching.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watching
    done = sorted(c for t in load.valid if (c := watcher.completed(t)) is not None)
    latencies = [speed_to_lead(t) for t in load.valid if t in watcher.ready]
    n = len(done)
    total = (done[-1] - first_send) if done else float("nan")
    return {
        "rate_target": rate,
        "inquiries": load.inquiries,
        "distinct_valid": len(load.valid),
        "duplicates": load.duplicates,
        "invalid": load.invalid,
        "activities": load.activities,
        "send_seconds": round(send_seconds, 2),
        "send_rate": round(load.inquiries / send_seconds, 1),
        "completed": n,
        "rejected_seen": watcher.rejected,
        "seconds_to_last": round(total, 2),
        "completed_per_s_overall": round(n / total, 1) if done else 0.0,
        "lag_max": max(lag_samples, default=lag_at_end),
        "lag_at_end_of_sending": lag_at_end,
        "worker_cpu_ms_per_lead": round(1000 * cpu / max(1, n), 2),
        "sales_ready": len(latencies),
        "speed_to_lead_ms": {k: round(v, 1) for k, v in percentiles(latencies).items()},
        "loadavg": load_avg,
    }


def describe(name: str, r: dict[str, Any]) -> str:
    return (
        f"{name}: {r['inquiries']} inquiries ({r['distinct_valid']} distinct valid, "
        f"{r['activities']} activities) sent at {r['send_rate']:,.0f}/s; "
        f"{r['completed']} processed, {r['completed_per_s_overall']:,.1f} leads/s "
        f"(first send to last completion); lag max {r['lag_max']}, "
        f"at end of sending {r['lag_at_end_of_sending']}; worker CPU "
        f"{r['worker_cpu_ms_per_lead']} ms per lead; speed-to-lead over "
        f"{r['sales_ready']} sales-ready: {fmt_latency(r['speed_to_lead_ms'])} "
        f"[load {r['loadavg']}]"
    )


async def measure(settings: Settings, seconds: float, activities: int,
                  max_leads: int, worker: int) -> dict[str, Any]:  # fmt: skip
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    results: dict[str, Any] = {}
    # the worker answers HTTP before it has its partitions: wait for a first batch
    warm = await run_phase(
        settings, topics, 300, 0, activities, seed=1, worker=worker, stall=WORKER_READY_S
    )
    print(describe("warm-up", warm), flush=True)
    estimate = max(warm["completed_per_s_overall"], 20.0)
    leads = int(min(max_leads, max(1000, estimate * seconds * 1.5)))
    saturation = await run_phase(settings, topics, leads, 0, activities, seed=2, worker=worker)
    results["saturation"] = saturation
    print(describe("saturation", saturation), flush=True)
    sustained = max(1.0, saturation["completed_per_s_overall"])
    results["sustained_max_leads_per_s"] = sustained
    for share in (0.1, 0.5, 0.9):
        rate = sustained * share
        n = int(min(max_leads, max(50, rate * seconds)))
        r = await run_phase(
            settings, topics, n, rate, activities, seed=int(share * 100), worker=worker
        )
        results[f"at_{int(share * 100)}pct"] = r
        print(describe(f"{int(share * 100)} % ({rate:,.0f} inquiries/s)", r), flush=True)
    bare = await run_phase(
        settings, topics, leads, 0, 0, seed=3, worker=worker
    )  # the hops alone, for the ratio
    results["saturation_inquiries_only"] = bare
    print(describe("saturation, inquiries without activities", bare), flush=True)
    return results


async def close_the_loop(settings: Settings, topics: Topics) -> int:
    """A simulated CRM answers for every sales-ready lead (contacts, wins, losses), as in
    `make demo`, so the warehouse benchmark's attribution and money reports have deals."""
    watcher = OutcomeWatcher(settings.kafka, topics, from_beginning=True)
    await watcher.start()
    try:
        seen, quiet = -1, 0
        while quiet < 3:  # read to the end: three polls in a row bring nothing new
            await watcher.poll(timeout_ms=500)
            now_seen = sum(map(len, watcher.outcomes.sales_ready.values()))
            quiet, seen = (quiet + 1, seen) if now_seen == seen else (0, now_seen)
    finally:
        await watcher.stop()
    return await answer_as_crm(settings.kafka, topics, watcher.outcomes)


def export_events(settings: Settings, path: Path) -> None:
    """The worker's warehouse rows as a ClickHouse Native file (the warehouse benchmark's input)."""
    path.unlink(missing_ok=True)
    warehouse = open_warehouse(settings)
    try:
        warehouse.execute(f"SELECT * FROM {EVENTS_TABLE} INTO OUTFILE '{path}' FORMAT Native")
    finally:
        warehouse.close()


def run(seconds: float = 20.0, activities: int = ACTIVITIES_PER_LEAD, max_leads: int = 60_000,
        keep_events: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """All phases on one worker; `keep_events` gets its warehouse's rows (Native format)."""
    with bench_settings("e2e") as settings:
        topics = load_topics(settings.topics_file, settings.topic_prefix)
        asyncio.run(apply_topics(settings.kafka, topics.all()))
        log = Path(settings.state_dir) / "worker.log"
        with WorkerProcess(settings, log) as worker:
            assert worker.process is not None
            pid = worker.process.pid
            results = asyncio.run(measure(settings, seconds, activities, max_leads, pid))
            if keep_events is not None:
                results["crm_outcomes"] = asyncio.run(close_the_loop(settings, topics))
                asyncio.run(wait_until_stored(settings, timeout=300))
        results["worker_log_warnings"] = sum(
            1 for line in log.read_text(errors="replace").splitlines() if "WARNING" in line
        )
        if keep_events is not None:
            export_events(settings, keep_events)
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each rate run")
    parser.add_argument("--activities", type=int, default=ACTIVITIES_PER_LEAD)
    parser.add_argument("--max-leads", type=int, default=60_000)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    results = run(args.seconds, args.activities, args.max_leads)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
