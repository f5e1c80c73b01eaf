"""What every benchmark shares: its own settings (topic prefix, consumer groups,
state directory, web port), cleaning up after itself, figures and the load average.

A benchmark never touches the shared broker's other users: everything it
creates is named `bench<run>.…` (topics) or `leadflow-bench-<run>…` (groups,
changelog topics) and is deleted again at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from pipeline.adapters.kafka.security import Broker, client_options
from pipeline.config.settings import Settings, load_settings
from pipeline.dev.local_kafka import LocalKafka


@contextlib.contextmanager
def own_broker() -> Iterator[str]:
    """A broker of our own on free ports, its data deleted afterwards: no other user's
    topics, restarts or load on it. Uses the jars of the project's local broker."""
    shared = load_settings()
    shared.state_dir.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="bench-broker-", dir=shared.state_dir))
    broker = LocalKafka.private(home)
    try:
        broker.up(log=lambda line: print(line, flush=True))
        yield broker.bootstrap
    finally:
        broker.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used: per message it barely depends on what
    else runs on the machine, unlike wall-clock rates."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    """The 1/5/15-minute load average: other processes make the figures noisy."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def bench_settings(name: str, **overrides: object) -> Iterator[Settings]:
    """Settings of one benchmark run: own topics, groups, state and port; cleaned up after."""
    run_id = f"{name}{uuid.uuid4().hex[:6]}"
    stop_on_sigterm()
    with tempfile.TemporaryDirectory(prefix=f"leadflow-{run_id}-") as state:
        settings = load_settings(
            **{
                "topic_prefix": f"bench{run_id}.",
                "app_id": f"leadflow-bench-{run_id}",
                "state_dir": Path(state),
                "web_port": free_port(),
                **overrides,
            }
        )
        try:
            yield settings
        finally:
            asyncio.run(delete_topics(settings.kafka, settings))


async def delete_topics(bootstrap: Broker, settings: Settings) -> None:
    """Delete the run's topics (its prefix) and the worker's changelog topics (its app id)."""
    admin = AIOKafkaAdminClient(**client_options(bootstrap), request_timeout_ms=30000)
    await admin.start()
    try:
        mine = [
            t
            for t in await admin.list_topics()
            if t.startswith(settings.topic_prefix) or t.startswith(f"{settings.app_id}-")
        ]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the worker processes we started are stopped."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def percentiles(values_ms: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 / max of latencies in milliseconds."""
    if not values_ms:
        return {}
    ordered = sorted(values_ms)
    if len(ordered) == 1:
        only = ordered[0]
        return {"p50": only, "p95": only, "p99": only, "max": only}
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "max": ordered[-1]}


def fmt_latency(p: dict[str, float]) -> str:
    if not p:
        return "no sales-ready leads"
    return ", ".join(f"{k} {v:,.0f}" for k, v in p.items()) + " ms"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def machine() -> str:
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return f"{os.cpu_count()} cores ({cpu_name()}), {mem_kb / 1024 / 1024:.0f} GiB RAM"
