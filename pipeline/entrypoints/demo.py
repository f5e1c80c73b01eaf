"""The main job: the whole pipeline on the local broker, fed with demo traffic,
closed by simulated CRM answers, ending in a funnel read from the warehouse and
the dashboard written next to it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipeline.adapters.kafka.client import publish, publish_keyed
from pipeline.adapters.kafka.security import Broker
from pipeline.adapters.worker_api import get_bytes, get_json, wait_until_stored
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics
from pipeline.dev.harness import Outcomes, OutcomeWatcher
from pipeline.dev.traffic import crm_outcomes, demo_inquiries
from pipeline.errors import LeadflowError
from pipeline.reporting.events import FUNNEL_COLUMNS
from schemas.envelope import utcnow


@dataclass
class DemoResult:
    published: int
    invalid: int
    duplicates: int
    accounted: int
    seconds: float
    funnel: list[dict[str, Any]]
    crm_outcomes: int
    money: dict[str, Any]
    """The money report over all channels: won deals, revenue, cost, ROI."""
    dashboard: Path


async def answer_as_crm(bootstrap: Broker, topics: Topics, outcomes: Outcomes) -> int:
    """The simulated CRM's answers to every sales-ready lead seen (`crm_outcomes`), on
    the feedback topic keyed by lead as a CRM keys them; how many it sent."""
    answers = crm_outcomes([events[0] for events in outcomes.sales_ready.values()])
    keyed = [(str(a.lead_id).encode(), a.model_dump_json().encode()) for a in answers]
    return len(await publish_keyed(bootstrap, topics.feedback.name, keyed))


async def run_demo(
    settings: Settings,
    topics: Topics,
    count: int,
    console: Console,
    own_worker: Callable[[], None],
    timeout: float = 300.0,
) -> DemoResult:
    """Publish `count` inquiries to a running worker and wait until each is accounted for.

    `own_worker` raises unless the worker the demo started is alive and the one
    answering (`WorkerProcess.check`): asked while waiting and before the funnel is
    read, so a funnel is never another process's."""
    # received now, so speed to lead is the pipeline's own
    messages = demo_inquiries(
        count, run=f"{int(time.time())}-", start=utcnow(), spacing=timedelta()
    )
    watcher = OutcomeWatcher(settings.kafka, topics)
    await watcher.start()
    started = time.monotonic()
    try:
        positions = await publish(
            settings.kafka, topics.inquiries.name, [m.value for m in messages]
        )
        console.print(f"published {len(messages)} inquiries to {topics.inquiries.name}")
        pending = list(zip((m.value for m in messages), positions, strict=True))
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(
                "accounted (answered and sales-ready or nurtured, or rejected)", total=len(pending)
            )
            while pending:
                if time.monotonic() - started > timeout:
                    raise LeadflowError(
                        f"{len(pending)} inquiries not accounted for after {timeout:.0f} s; "
                        "see the worker log"
                    )
                own_worker()
                await watcher.poll()
                pending = [(v, at) for v, at in pending if not watcher.outcomes.accounted(v, at)]
                progress.update(task, completed=len(messages) - len(pending))
    finally:
        await watcher.stop()
    seconds = time.monotonic() - started
    answers = await answer_as_crm(settings.kafka, topics, watcher.outcomes)
    console.print(f"a simulated CRM answered with {answers} outcomes on {topics.feedback.name}")
    await wait_until_stored(settings)
    own_worker()
    dashboard = settings.state_dir / "dashboard.html"
    dashboard.write_bytes(get_bytes(settings, "/dashboard", timeout=60))
    return DemoResult(
        published=len(messages),
        invalid=sum(m.kind == "invalid" for m in messages),
        duplicates=sum(m.kind == "duplicate" for m in messages),
        accounted=len(messages),
        seconds=seconds,
        funnel=get_json(settings, "/v1/reports/pipeline")["rows"],
        crm_outcomes=answers,
        money=get_json(settings, "/v1/reports/money?by=all")["rows"][0],
        dashboard=dashboard,
    )


def funnel_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Lead funnel by channel, all runs so far (ClickHouse leadflow.lead_events)")
    for column in FUNNEL_COLUMNS:
        table.add_column(
            column.replace("_", "-"), justify="left" if column == "channel" else "right"
        )
    totals = {c: 0 for c in FUNNEL_COLUMNS[1:]}
    for row in rows:
        table.add_row(*(str(row[c]) for c in FUNNEL_COLUMNS))
        for c in totals:
            totals[c] += int(row[c])
    table.add_section()
    table.add_row("total", *(str(totals[c]) for c in FUNNEL_COLUMNS[1:]), style="bold")
    return table
