"""Profile the worker's hot path under load with py-spy (a dev dependency).

    .venv/bin/python -m bench.profile [--rate 50] [--seconds 20] [--idle] [--out DIR]

Starts the worker (own prefix, groups, state, port), attaches `py-spy record`
to it, sends the load generator's mix at `--rate` inquiries per second, and
prints where the worker's time went: the functions with the most samples on
top of the stack (own time) and in the stack (total time). `--idle` counts
waiting threads too (where the worker waits instead of working). The raw
collapsed stacks are kept in `--out` for a flame graph.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.common import bench_settings, loadavg
from bench.e2e import WORKER_READY_S, describe, run_phase
from bench.loadgen import ACTIVITIES_PER_LEAD, build_load, produce
from pipeline.adapters.kafka.admin import apply_topics
from pipeline.config.topics import load_topics
from pipeline.dev.harness import WorkerProcess


def summarise(raw: Path, top: int = 15) -> str:
    """Own and total samples per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        samples += n
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{samples} samples", "own time:"]
    lines += [f"  {100 * n / samples:5.1f} %  {f}" for f, n in own.most_common(top)]
    lines.append("total time (in the stack):")
    lines += [f"  {100 * n / samples:5.1f} %  {f}" for f, n in total.most_common(top)]
    return "\n".join(lines)


def profile(rate: float, seconds: float, idle: bool, out: Path) -> str:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "worker.collapsed"
    with bench_settings("profile") as settings:
        topics = load_topics(settings.topics_file, settings.topic_prefix)
        asyncio.run(apply_topics(settings.kafka, topics.all()))
        with WorkerProcess(settings, out / "worker.log") as worker:
            assert worker.process is not None
            warm = asyncio.run(
                run_phase(settings, topics, 300, 0, ACTIVITIES_PER_LEAD, seed=1,
                          worker=worker.process.pid, stall=WORKER_READY_S)
            )  # fmt: skip
            print(describe("warm-up (until processed)", warm), flush=True)
            record = [spy, "record", "--pid", str(worker.process.pid), "--format", "raw",
                      "--output", str(raw), "--duration", str(int(seconds)), "--rate", "100",
                      *(["--idle"] if idle else [])]  # fmt: skip
            spying = subprocess.Popen(record, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                load = build_load(topics, int(rate * seconds))
                asyncio.run(produce(settings.kafka, load, rate))
            finally:
                spying.wait()
    return f"py-spy at {rate:.0f} inquiries/s for {seconds:.0f} s [load {loadavg()}]\n" + (
        summarise(raw)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--idle", action="store_true", help="count waiting threads too")
    parser.add_argument("--out", type=Path, default=Path(".leadflow/bench/profile"))
    args = parser.parse_args()
    print(profile(args.rate, args.seconds, args.idle, args.out))


if __name__ == "__main__":
    main()
