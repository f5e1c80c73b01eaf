"""The project's own processes as a test runs them: the `leadflow` CLI and a worker
of a fresh tenant."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.config.settings import PROJECT_ROOT, Settings
from pipeline.config.topics import Topics, load_topics
from pipeline.dev.harness import WorkerProcess, settings_env
from tests.support.settings import isolated_settings


def leadflow(
    settings: Settings, *args: str, timeout: float = 60.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`leadflow ARGS` as its own process (it configures logging, which must not leak
    into the test process), with these settings and any extra environment."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.entrypoints.cli", *args],
        cwd=PROJECT_ROOT,
        env={**settings_env(settings), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def started_worker(bootstrap: str, state: Path) -> Iterator[tuple[Settings, Topics, WorkerProcess]]:
    """A worker process of a fresh tenant (isolated settings), stopped on the way out."""
    settings = isolated_settings(bootstrap, state)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    worker = WorkerProcess(settings, state / "worker.log")
    worker.start()
    try:
        yield settings, topics, worker
    finally:
        worker.stop()
