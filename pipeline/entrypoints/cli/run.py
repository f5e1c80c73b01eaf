"""The top-level commands that run something: the worker, the demo, the CRM
bridge; the worker's queues; and `clean`, which deletes the state they leave."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from typing import Annotated

import typer

from pipeline.entrypoints.cli.common import (
    cli_settings,
    console,
    friendly,
    print_table,
    topics_of,
)
from pipeline.entrypoints.cli.topics import apply
from pipeline.errors import LeadflowError, WorkerUnavailable


@friendly
def queues() -> None:
    """Load, caps and availability per rep, from the running worker."""
    from pipeline.adapters.worker_api import get_json

    settings = cli_settings()
    try:
        report = get_json(settings, "/v1/queues")
    except OSError as exc:
        raise WorkerUnavailable(settings.web_url, "`leadflow queues`") from exc
    for queue, reps in report.items():
        console.print(f"[bold]{queue}[/bold]")
        for r in reps:
            cap = "-" if r["max_open"] is None else r["max_open"]
            day = "-" if r["max_per_day"] is None else r["max_per_day"]
            here = "available" if r["available"] else "away"
            console.print(
                f"  {r['rep_id']:<20} open {r['open']}/{cap}  today {r['today']}/{day}  {here}"
            )


@friendly
def worker(
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Start even though a running experiment changed since the last start "
            "(LEADFLOW_FORCE_EXPERIMENT_CHANGES).",
        ),
    ] = False,
) -> None:
    """Run every stage agent and the warehouse sink (stop with Ctrl-C / SIGTERM)."""
    from pipeline.bootstrap import create_app, guard_experiments
    from pipeline.config.rules import load_rules
    from pipeline.worker.faust_app import run_worker

    settings = cli_settings()
    if force:
        settings = settings.model_copy(update={"force_experiment_changes": True})
    topics = topics_of(settings)
    rules = load_rules(settings.rules_dir)
    guard_experiments(settings, rules)
    settings.state_dir.mkdir(parents=True, exist_ok=True)  # new on an installed first start
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = create_app(settings, topics, rules)
    apply(settings, app, loop)
    run_worker(app, settings, loop)


@friendly
def demo(
    leads: Annotated[int, typer.Option(min=1, help="How many inquiries to publish.")] = 400,
) -> None:
    """Start the worker, feed it demo inquiries, wait for every outcome, print the funnel."""
    from pipeline.dev.harness import WorkerProcess
    from pipeline.entrypoints.demo import funnel_table, run_demo

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the worker on the way out
    settings = cli_settings()
    topics = topics_of(settings)
    log_file = settings.state_dir / "logs" / "worker.log"
    own = WorkerProcess(settings, log_file)
    own.refuse_taken_port()  # before anything is done: the demo needs its own worker
    apply(settings)
    console.print(f"starting the worker (log: {log_file})")
    with own:
        result = asyncio.run(run_demo(settings, topics, leads, console, own.check))
        print_table(funnel_table(result.funnel))
        console.print(
            f"{result.published} inquiries ({result.duplicates} re-sent duplicates, "
            f"{result.invalid} invalid) all accounted for in {result.seconds:.1f} s"
        )
        money = result.money
        roi = "–" if money["roi"] is None else f"{money['roi']:.2f}"
        console.print(
            f"closed loop, all runs so far: {money['won']} deals won, revenue "
            f"{money['revenue_eur']:,.0f} EUR, cost {money['cost_eur']:,.0f} EUR, ROI {roi} "
            f"(leadflow report money | attribution | speed …)"
        )
        console.print(f"dashboard: {result.dashboard}")
        console.print("stopping the worker")


@friendly
def crm_bridge(
    url: Annotated[str, typer.Option("--url", help="The CRM's webhook, http(s)://…")],
    token_env: Annotated[
        str | None, typer.Option("--token-env", help="Variable holding a bearer token.")
    ] = None,
    max_messages: Annotated[
        int | None, typer.Option("--max-messages", min=1, help="Stop after N leads.")
    ] = None,
    retry_base: Annotated[
        float, typer.Option("--retry-base", min=0.01, help="First retry delay, seconds.")
    ] = 0.5,
    retry_max: Annotated[
        float, typer.Option("--retry-max", min=0.01, help="Longest retry delay, seconds.")
    ] = 30.0,
) -> None:
    """Deliver leads.sales-ready to a CRM webhook (retries, backoff, Idempotency-Key)."""
    import os
    from urllib.parse import urlparse

    from pydantic import SecretStr

    from pipeline.adapters.crm_bridge import CrmBridge

    parsed = urlparse(url)
    try:
        valid = parsed.scheme in {"http", "https"} and bool(parsed.hostname)
        parsed.port  # noqa: B018 - raises ValueError on a port that is no number
    except ValueError:
        valid = False
    if not valid:
        raise LeadflowError(
            f"--url must be an http(s) address, e.g. https://crm.example/hook; got {url!r}"
        )
    token = None
    if token_env is not None:
        if not os.environ.get(token_env):
            raise LeadflowError(f"--token-env {token_env}: that variable is not set")
        token = SecretStr(os.environ[token_env])
    settings = cli_settings()
    topics = topics_of(settings)
    bridge = CrmBridge(settings, topics, url, token, retry_base, retry_max)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await bridge.run(max_messages, stop)

    where = parsed.netloc.rpartition("@")[2]  # host and port, never user:password
    console.print(f"delivering {topics.sales_ready.name} to {where} (stop: Ctrl-C / SIGTERM)")
    asyncio.run(run())
    console.print(f"{bridge.tally.delivered} delivered, {bridge.tally.rejected} rejected")


@friendly
def clean(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete the state directory (broker data, worker tables, embedded warehouse)."""
    settings = cli_settings()
    if not yes and not typer.confirm(f"Delete {settings.state_dir}?"):
        raise typer.Exit(1)
    shutil.rmtree(settings.state_dir, ignore_errors=True)
    console.print(f"removed {settings.state_dir}")
