"""The worker's logging set-up: Faust's own, without its terminal spinner."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import faust
import pytest

from pipeline.worker.faust_app import Worker


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.mark.parametrize("worker", [Worker, faust.Worker], ids=["ours", "faust"])
def test_debug_records_are_not_built_at_warning_level(
    root_logger: logging.Logger, worker: type[faust.Worker]
) -> None:
    """Faust's spinner turns the root logger to DEBUG, so aiokafka built (and our
    masking formatted) a debug record for every request; ours keeps WARNING."""
    app = faust.App("leadflow-logging-test", autodiscover=False)
    worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)._setup_logging()
    debug_built = logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)
    assert debug_built is (worker is faust.Worker)
