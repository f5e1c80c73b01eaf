"""`leadflow`: the operator's interface. Each command does one thing, prints what
happened, and exits non-zero on failure with a message instead of a traceback."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from collections.abc import Callable
from functools import wraps
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console

from pipeline.config.settings import Settings, load_settings
from pipeline.errors import LeadflowError

console = Console(width=None if sys.stdout.isatty() else 120)
app = typer.Typer(help="Leadflow: event-driven lead management on Kafka.", no_args_is_help=True)
kafka_app = typer.Typer(help="The local single-node Kafka broker.", no_args_is_help=True)
topics_app = typer.Typer(help="Topics from topics.yaml.", no_args_is_help=True)
schemas_app = typer.Typer(help="Event schemas.", no_args_is_help=True)
report_app = typer.Typer(help="Closed-loop reports from the warehouse.", no_args_is_help=True)
rules_app = typer.Typer(help="Business rules RevOps edits (deploy/rules).", no_args_is_help=True)
routing_app = typer.Typer(help="Who gets which lead, and why.", no_args_is_help=True)
lead_app = typer.Typer(
    help="One lead: its timeline; split or merge what identity resolution got wrong.",
    no_args_is_help=True,
)
nurture_app = typer.Typer(help="Nurture programs per lead.", no_args_is_help=True)
privacy_app = typer.Typer(
    help="A person's data: export it (GDPR Art. 15), erase it (Art. 17).", no_args_is_help=True
)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
app.add_typer(report_app, name="report")
app.add_typer(routing_app, name="routing")
app.add_typer(rules_app, name="rules")
app.add_typer(lead_app, name="lead")
app.add_typer(nurture_app, name="nurture")
app.add_typer(privacy_app, name="privacy")

F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn our errors into one red message and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LeadflowError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _settings() -> Settings:
    settings = load_settings()
    from pipeline.config.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    return settings


@kafka_app.command("up")
@friendly
def kafka_up() -> None:
    """Fetch (once), format (once) and start the local broker; wait until it accepts connections."""
    from pipeline.dev.local_kafka import LocalKafka

    status = LocalKafka(_settings()).up(log=lambda line: console.print(f"[dim]{line}[/dim]"))
    console.print(f"Kafka is up at [bold]{status.bootstrap}[/bold]")


@kafka_app.command("status")
@friendly
def kafka_status() -> None:
    """Is the local broker running? (exit 1 if not)"""
    from pipeline.dev.local_kafka import LocalKafka

    status = LocalKafka(_settings()).status()
    if not status.running:
        console.print(f"Kafka is not running at {status.bootstrap}")
        raise typer.Exit(1)
    owner = f"pid {status.pid}" if status.managed else "not started by leadflow"
    console.print(f"Kafka is running at {status.bootstrap} ({owner})")


@kafka_app.command("down")
@friendly
def kafka_down(
    purge: Annotated[
        bool,
        typer.Option(help="Also delete the broker's data and logs and the worker's table state."),
    ] = False,
) -> None:
    """Stop the local broker cleanly; its data is kept unless --purge."""
    from pipeline.dev.local_kafka import LocalKafka

    stopped = LocalKafka(_settings()).down(purge=purge)
    console.print("Kafka stopped" if stopped else "Kafka was not running")
    if purge:
        console.print("broker data removed")


def _topics(settings: Settings) -> Any:
    from pipeline.config.topics import load_topics

    return load_topics(settings.topics_file, settings.topic_prefix)


@topics_app.command("apply")
@friendly
def topics_apply() -> None:
    """Create missing topics and table changelogs; report live settings that differ."""
    settings = _settings()
    report = _apply(settings)
    for name in report.created:
        console.print(f"[green]created[/green]  {name}")
    for name in report.unchanged:
        console.print(f"[dim]ok[/dim]       {name}")
    for name, problems in report.drift.items():
        console.print(f"[yellow]drift[/yellow]    {name}: " + "; ".join(problems))


def _apply(
    settings: Settings, app: Any = None, loop: asyncio.AbstractEventLoop | None = None
) -> Any:
    """Create what topics.yaml names and every table's changelog (`ChangelogSpec`):
    all exist, with their partition counts, before a worker subscribes."""
    from pipeline.adapters.kafka.admin import apply_topics
    from pipeline.bootstrap import create_app
    from pipeline.config.rules import load_rules
    from pipeline.worker.faust_app import table_changelogs

    topics = _topics(settings)
    if app is None:
        app = create_app(settings, topics, load_rules(settings.rules_dir))
    declared = [*topics.all(), *table_changelogs(app)]
    applying = apply_topics(settings.kafka_bootstrap, declared, settings.topic_replication_factor)
    return asyncio.run(applying) if loop is None else loop.run_until_complete(applying)


@topics_app.command("list")
@friendly
def topics_list() -> None:
    """Show the registry: name, partitions, retention, key and value model."""
    for spec in _topics(_settings()).all():
        retention = "forever" if spec.retention_days is None else f"{spec.retention_days}d"
        console.print(
            f"{spec.name:<24} {spec.partitions:>3}p {retention:>8}  key={spec.key}  {spec.value}"
        )


@app.command()
@friendly
def queues() -> None:
    """Load, caps and availability per rep, from the running worker."""
    from pipeline.adapters.worker_api import get_json

    settings = _settings()
    try:
        report = get_json(settings, "/v1/queues")
    except OSError as exc:
        raise LeadflowError(f"no worker answers at {settings.web_url} ({exc})") from exc
    for queue, reps in report.items():
        console.print(f"[bold]{queue}[/bold]")
        for r in reps:
            cap = "-" if r["max_open"] is None else r["max_open"]
            day = "-" if r["max_per_day"] is None else r["max_per_day"]
            here = "available" if r["available"] else "away"
            console.print(
                f"  {r['rep_id']:<20} open {r['open']}/{cap}  today {r['today']}/{day}  {here}"
            )


@schemas_app.command("export")
@friendly
def schemas_export(out_dir: Annotated[Path, typer.Argument(help="Where to write.")]) -> None:
    """Write a JSON Schema per topic and an AsyncAPI 3 document."""
    from pipeline.config.asyncapi import export_schemas

    for path in export_schemas(_topics(_settings()), out_dir, version("leadflow")):
        console.print(f"wrote {path}")


@app.command()
@friendly
def worker() -> None:
    """Run every stage agent and the warehouse sink (stop with Ctrl-C / SIGTERM)."""
    from pipeline.bootstrap import create_app
    from pipeline.config.rules import load_rules
    from pipeline.worker.faust_app import run_worker

    settings = _settings()
    topics = _topics(settings)
    rules = load_rules(settings.rules_dir)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = create_app(settings, topics, rules)
    _apply(settings, app, loop)
    run_worker(app, settings, loop)


@app.command()
@friendly
def demo(
    leads: Annotated[int, typer.Option(min=1, help="How many inquiries to publish.")] = 400,
) -> None:
    """Start the worker, feed it demo inquiries, wait for every outcome, print the funnel."""
    from pipeline.dev.harness import WorkerProcess
    from pipeline.entrypoints.demo import funnel_table, run_demo

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the worker on the way out
    settings = _settings()
    topics = _topics(settings)
    _apply(settings)
    log_file = settings.state_dir / "logs" / "worker.log"
    console.print(f"starting the worker (log: {log_file})")
    with WorkerProcess(settings, log_file):
        result = asyncio.run(run_demo(settings, topics, leads, console))
        console.print(funnel_table(result.funnel))
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


@app.command("import")
@friendly
def import_file(
    file: Annotated[Path, typer.Argument(help="CSV (comma, semicolon, tab), XLSX, .eml or .mbox.")],
    channel: Annotated[str, typer.Option(help="Channel of every row.")] = "trade_fair",
    campaign: Annotated[str | None, typer.Option(help="Campaign of every row.")] = None,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=Header, overrides the detected column mapping."),
    ] = None,
    errors: Annotated[
        Path | None, typer.Option(help="Per-row error file (default: FILE.errors.csv).")
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for the running worker to place the rows (new lead or "
            "merged into an existing one); 0: publish only."
        ),
    ] = 300.0,
) -> None:
    """Publish a list of inquiries (fair, event) or e-mails; problems go to an error file.

    Every row is published: capture rejects the bad ones into leads.rejected too.
    With a worker running, the import then waits until identity resolution has
    placed every row and prints how many became new leads and how many were
    merged into leads that existed (by e-mail, phone or company).
    """
    import csv

    from rich.progress import track

    from pipeline.adapters.bulk_import import placed, placement_line, rows_from_file, summarise
    from pipeline.adapters.kafka.client import CaptureWatcher
    from pipeline.adapters.worker_api import worker_answers
    from pipeline.config.reference import postal_table
    from pipeline.domain.capture.plausibility import Plausibility
    from pipeline.errors import ConfigError

    settings = _settings()
    overrides = dict(item.split("=", 1) for item in map_ or [] if "=" in item)
    policy = Plausibility(settings.default_region, postal_table())
    try:
        rows = list(
            track(
                rows_from_file(file, channel, campaign, overrides, policy),
                description="reading",
                console=console,
            )
        )
    except (OSError, ValueError, csv.Error) as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    topics = _topics(settings)
    watching = wait > 0 and worker_answers(settings)
    traces = {r.trace for r in rows if not r.problems and r.trace}

    async def publish_and_watch() -> dict[str, Any]:
        from pipeline.adapters.kafka.client import publish

        watcher = CaptureWatcher(settings.kafka_bootstrap, topics)
        if watching:
            await watcher.start()
        try:
            with console.status(f"publishing {len(rows)} rows to {topics.inquiries.name}"):
                await publish(
                    settings.kafka_bootstrap, topics.inquiries.name, [r.value for r in rows]
                )
            if not watching:
                return {}
            with console.status(f"waiting for the worker to place {len(traces)} rows"):
                return dict(await watcher.wait(traces, wait))
        finally:
            if watching:
                await watcher.stop()

    outcomes = asyncio.run(publish_and_watch())
    summary = summarise(rows)
    error_file = errors or file.with_suffix(file.suffix + ".errors.csv")
    _write_import_errors(error_file, summary.errors)
    console.print(
        f"{len(rows)} rows: [green]{summary.accepted} accepted[/green], "
        f"[red]{summary.rejected} rejected[/red] (see {error_file}), "
        f"{summary.duplicates} duplicates of an earlier row",
        soft_wrap=True,  # one line for scripts, however long the path
    )
    if not watching:
        why = "--wait 0" if wait <= 0 else f"no worker answers at {settings.web_url}"
        console.print(f"merges not counted ({why}): the worker places the rows when it runs")
        return
    placement = placed(rows, outcomes)
    console.print(f"placed: {placement_line(placement)}", soft_wrap=True)
    if placement.pending:
        raise LeadflowError(
            f"{placement.pending} rows were not placed within {wait:.0f} s; they are published "
            "and the worker places them (see leadflow report funnel)"
        )


def _write_import_errors(path: Path, errors: list[tuple[int, list[Any]]]) -> None:
    import csv

    from pipeline.domain.spreadsheet import spreadsheet_safe

    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["row", "code", "field", "message"])
        for number, reasons in errors:
            for r in reasons:
                cells = [r.code, r.field or "", r.message]
                writer.writerow([number, *(spreadsheet_safe(c) for c in cells)])


Format = Literal["table", "csv", "json"]
FORMAT_OPTION = typer.Option("table", "--format", help="table, csv or json.")


def _report_command(name: str, title: str, dimensions: tuple[str, ...]) -> None:
    """Register `leadflow report NAME` for one report."""

    @friendly
    def command(  # options as defaults: the help text names this report's dimensions
        by: str | None = typer.Option(None, help=f"Group by: {', '.join(dimensions)}."),
        since: str | None = typer.Option(None, help="Only from this date on, e.g. 2026-11-01."),
        grain: str = typer.Option("day", help="day, week or month (sources)."),
        half_life: float = typer.Option(7.0, help="Time-decay half-life in days (attribution)."),
        format_: Format = FORMAT_OPTION,
    ) -> None:
        import json

        from pipeline.adapters.worker_api import ask_worker
        from pipeline.reporting.client import through_worker_or_direct
        from pipeline.reporting.reports import parse_params, run_report

        settings = _settings()
        query = {"grain": grain, "half_life_days": str(half_life)}
        query |= {k: v for k, v in {"by": by, "since": since}.items() if v}
        params = parse_params(query)  # a bad option fails here, before any I/O
        rows = through_worker_or_direct(
            settings,
            _topics(settings),
            lambda: ask_worker(settings, f"/v1/reports/{name}", query),
            lambda w, inputs: run_report(w, name, params, inputs),
            lambda answer: json.loads(answer)["rows"],
        )
        _print_rows(rows, format_, title)

    command.__doc__ = f"{title}."
    report_app.command(name)(command)


def _print_rows(rows: list[dict[str, Any]], format_: str, title: str) -> None:
    import json

    from rich.table import Table

    from pipeline.reporting.client import csv_text

    if format_ == "json":
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    elif format_ == "csv":
        sys.stdout.write(csv_text(rows))
    else:
        table = Table(title=title)
        columns = list(rows[0]) if rows else []
        for column in columns:
            numeric = any(isinstance(r.get(column), int | float) for r in rows)
            table.add_column(column, justify="right" if numeric else "left")
        for row in rows:
            table.add_row(*("–" if row.get(c) is None else str(row.get(c)) for c in columns))
        console.print(table if rows else f"{title}: no rows")


def _register_reports() -> None:
    from pipeline.reporting.reports import REPORTS

    for report in REPORTS.values():
        _report_command(report.name, report.title, report.by)


_register_reports()


@report_app.command("dashboard")
@friendly
def report_dashboard(
    out: Annotated[Path, typer.Option("--out", help="Where to write the HTML page.")],
    since: Annotated[str | None, typer.Option(help="Only from this date on.")] = None,
) -> None:
    """Write the dashboard as one self-contained HTML file (works offline)."""
    from pipeline.adapters.worker_api import ask_worker
    from pipeline.reporting.client import through_worker_or_direct
    from pipeline.reporting.dashboard import dashboard_data, render_dashboard
    from pipeline.reporting.reports import parse_params
    from schemas.envelope import utcnow

    settings = _settings()
    query = {"since": since} if since else {}
    params = parse_params(query)
    html = through_worker_or_direct(
        settings,
        _topics(settings),
        lambda: ask_worker(settings, "/dashboard", query),
        lambda w, inputs: render_dashboard(dashboard_data(w, params, inputs), utcnow()),
        lambda answer: answer.decode("utf-8"),
    )
    out.write_text(html, encoding="utf-8")
    console.print(f"wrote {out}")


@report_app.command("sql")
@friendly
def report_sql(
    query: Annotated[str, typer.Argument(help="One read-only query, e.g. 'SELECT …'.")],
    format_: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """Run one read-only SQL query on the warehouse (what POST /v1/sql runs)."""
    import json

    from pipeline.adapters.warehouse.clickhouse import analyst_query
    from pipeline.adapters.worker_api import ask_worker
    from pipeline.reporting.client import through_worker_or_direct

    settings = _settings()
    rows = through_worker_or_direct(
        settings,
        _topics(settings),
        lambda: ask_worker(settings, "/v1/sql", body=query.encode()),
        lambda w, _: analyst_query(w, query),
        lambda answer: json.loads(answer)["rows"],
    )
    _print_rows(rows, format_, "query")


@report_app.command("sink")
@friendly
def report_sink() -> None:
    """How far the warehouse sink is behind: messages not yet stored (from the worker)."""
    import json

    from pipeline.adapters.worker_api import ask_worker

    settings = _settings()
    answer = ask_worker(settings, "/v1/warehouse/lag")
    if answer is None:
        raise LeadflowError(f"no worker answers at {settings.web_url}: nothing is sinking")
    lag = json.loads(answer)
    console.print(
        f"lag {lag['lag']} messages ({lag['unread']} unread, {lag['buffered']} in the batch), "
        f"{lag['inserted']} rows stored since the worker started"
    )


LeadId = Annotated[str, typer.Argument(help="The lead's id.")]


def _lead_uuid(text: str) -> Any:
    import uuid

    try:
        return uuid.UUID(text)
    except ValueError:
        raise LeadflowError(f"{text!r} is not a lead id (a UUID)") from None


@lead_app.command("show")
@friendly
def lead_show(lead_id: LeadId) -> None:
    """Print the lead's timeline: from the running worker, or the warehouse directly."""
    import json

    from rich.table import Table

    from pipeline.adapters.worker_api import ask_worker
    from pipeline.reporting.client import through_worker_or_direct
    from pipeline.reporting.timeline import lead_timeline

    lead = _lead_uuid(lead_id)
    settings = _settings()
    rows = through_worker_or_direct(
        settings,
        _topics(settings),
        lambda: ask_worker(settings, f"/v1/leads/{lead}/timeline"),
        lambda w, _: lead_timeline(w, lead),
        json.loads,
    )
    if not rows:
        raise LeadflowError(f"the warehouse knows no events of lead {lead}")
    table = Table(title=f"Lead {lead}")
    for column in ("when (UTC)", "channel", "what happened"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["occurred_at"][:19], row["channel"], row["summary"])
    console.print(table)


def _captures(settings: Settings, lead: Any) -> list[Any]:
    """The lead's inquiries as captured, once the warehouse has stored everything
    (a correction needs the running worker: its identify stage applies it)."""
    from pydantic import TypeAdapter

    from pipeline.adapters.worker_api import ask_worker, wait_until_stored, worker_answers
    from pipeline.reporting.client import through_worker_or_direct
    from pipeline.reporting.timeline import lead_captures
    from schemas.lead import LeadCaptured

    if not worker_answers(settings):
        raise LeadflowError(f"no worker answers at {settings.web_url}; corrections need it running")
    asyncio.run(wait_until_stored(settings))
    captures: list[Any] = through_worker_or_direct(
        settings,
        _topics(settings),
        lambda: ask_worker(settings, f"/v1/leads/{lead}/captures"),
        lambda w, _: lead_captures(w, lead),
        TypeAdapter(list[LeadCaptured]).validate_json,
    )
    if not captures:
        raise LeadflowError(f"the warehouse knows no inquiries of lead {lead}")
    return captures


def _correct(settings: Settings, **fields: Any) -> list[Any]:
    """Send an operator's correction to the identify stage; what it did, per lead."""
    import uuid

    from pipeline.adapters.kafka.client import correct_and_wait
    from schemas.envelope import utcnow
    from schemas.lead import CorrectIdentity

    now = utcnow()
    command = CorrectIdentity(event_id=uuid.uuid4(), occurred_at=now, emitted_at=now, **fields)
    bootstrap = settings.kafka_bootstrap
    return asyncio.run(correct_and_wait(bootstrap, _topics(settings), command, 120.0))


@lead_app.command("split")
@friendly
def lead_split(
    lead_id: LeadId,
    inquiry: Annotated[
        str, typer.Argument(help="The inquiry's id (as `lead show` prints it) or its trace id.")
    ],
) -> None:
    """Split an inquiry off the lead it was merged into: it becomes a lead of its own
    (enriched, qualified and routed afresh), and its e-mail, phone and name at the
    company find that lead from now on."""
    lead = _lead_uuid(lead_id)
    settings = _settings()
    captures = _captures(settings, lead)
    chosen = [c for c in captures if inquiry in (c.payload.inquiry_id, str(c.trace_id))]
    if not chosen:
        known = ", ".join(c.payload.inquiry_id for c in captures)
        raise LeadflowError(f"lead {lead} has no inquiry {inquiry!r} (its inquiries: {known})")
    if not chosen[0].merged:
        raise LeadflowError(
            f"inquiry {inquiry!r} started lead {lead}: split off the inquiries merged into it"
        )
    done = _correct(settings, action="split", lead=lead, captures=chosen[:1])
    [new] = [d for d in done if d.payload.action == "split_from"]
    console.print(
        f"inquiry {chosen[0].payload.inquiry_id} split off lead {lead}: it is lead "
        f"{new.lead_id} now ({new.payload.keys} identity keys find it), captured again",
        soft_wrap=True,
    )


@lead_app.command("merge")
@friendly
def lead_merge(
    lead_id: LeadId,
    other: Annotated[str, typer.Argument(help="The lead of the same person, merged into it.")],
) -> None:
    """Merge two leads of one person by hand: every identity key of OTHER (its e-mail
    addresses, phones and names at companies) finds LEAD_ID from now on; both
    timelines record it. OTHER's own events stay its own."""
    lead, merged = _lead_uuid(lead_id), _lead_uuid(other)
    if lead == merged:
        raise LeadflowError("a lead cannot be merged into itself")
    settings = _settings()
    _captures(settings, lead)  # the lead exists
    captures = _captures(settings, merged)
    done = _correct(settings, action="merge", lead=lead, other_lead=merged, captures=captures)
    keys = done[0].payload.keys
    console.print(
        f"lead {merged} merged into lead {lead}: {keys} identity keys find it from now on"
    )


@rules_app.command("check")
@friendly
def rules_check(
    file: Annotated[Path, typer.Argument(help="A rule file, e.g. deploy/rules/scoring.yaml.")],
    kind: Annotated[
        str | None, typer.Option(help="scoring, enrichment, nurture or routing (default: name)")
    ] = None,
) -> None:
    """Validate one rule file; name the key and the problem if it is wrong."""
    from pipeline.config.rules import check_rule_file

    console.print(f"[green]ok[/green] {file}: {check_rule_file(file, kind)}")


@rules_app.command("explain")
@friendly
def rules_explain(lead_id: Annotated[str, typer.Argument(help="The lead's id.")]) -> None:
    """Print how the lead's current score came about (asks the worker, else reads the topic)."""
    import json
    import urllib.error

    from pipeline.adapters.kafka.client import last_event_of
    from pipeline.adapters.worker_api import get_json
    from pipeline.domain.qualify.scoring import explain
    from schemas.lead import LeadQualified, Qualification

    settings = _settings()
    try:
        last = get_json(settings, f"/v1/leads/{lead_id}/qualification").get("last")
    except (OSError, urllib.error.HTTPError):  # no worker, or not its partition
        last = None
    if last is not None:
        qualification = Qualification.model_validate_json(json.dumps(last))
    else:
        topic = _topics(settings).qualified
        raw = asyncio.run(last_event_of(settings.kafka_bootstrap, topic, lead_id))
        if raw is None:
            raise LeadflowError(f"no qualification of lead {lead_id} on {topic.name}")
        qualification = LeadQualified.model_validate_json(raw).payload
    for line in explain(qualification):
        console.print(line, markup=False, highlight=False)


@routing_app.command("explain")
@friendly
def routing_explain(lead_id: Annotated[str, typer.Argument(help="The lead's id.")]) -> None:
    """Print the lead's queue, the rule that chose it, its owner and how (leads.sales-ready)."""
    from pipeline.adapters.kafka.client import last_event_of
    from pipeline.domain.distribute.routing import explain_assignment
    from schemas.lead import LeadAssigned

    settings = _settings()
    topic = _topics(settings).sales_ready
    raw = asyncio.run(last_event_of(settings.kafka_bootstrap, topic, lead_id))
    if raw is None:
        raise LeadflowError(f"lead {lead_id} has no owner yet (nothing on {topic.name})")
    for line in explain_assignment(LeadAssigned.model_validate_json(raw)):
        console.print(line, markup=False, highlight=False)


@nurture_app.command("status")
@friendly
def nurture_status(lead_id: Annotated[str, typer.Argument(help="The lead's id.")]) -> None:
    """Print the lead's segments, contact permissions, programs, next steps and history.

    Asks the worker that owns the lead's partition (GET /v1/leads/{id}/nurture, with the
    operator key): the step timers live in its table.
    """
    import urllib.error

    from pipeline.adapters.worker_api import get_json
    from pipeline.domain.nurture.programs import NurtureStatus, explain_status

    settings = _settings()
    try:
        found = get_json(settings, f"/v1/leads/{lead_id}/nurture")
    except urllib.error.HTTPError as exc:
        why = {401: "the worker refused the operator key", 404: "the worker holds no such lead"}
        raise LeadflowError(f"lead {lead_id}: {why.get(exc.code, exc)}") from exc
    except OSError as exc:
        raise LeadflowError(f"no worker answers at {settings.web_url} ({exc})") from exc
    for line in explain_status(NurtureStatus.model_validate(found)):
        console.print(line, markup=False, highlight=False)


@app.command("crm-bridge")
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
    settings = _settings()
    topics = _topics(settings)
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


Subject = Annotated[str, typer.Argument(help="The lead's id, or the person's e-mail address.")]


def _person(settings: Settings, subject: str) -> Any:
    """The subject resolved by the running worker, once its warehouse has stored
    everything (it owns the warehouse; the erasure runs in it too)."""
    from pipeline.adapters.worker_api import post_json, wait_until_stored
    from pipeline.domain.privacy.person import Person

    try:
        asyncio.run(wait_until_stored(settings))
        found = post_json(settings, "/v1/privacy/person", {"subject": subject})
    except (OSError, LeadflowError) as exc:
        raise LeadflowError(
            f"no worker answers at {settings.web_url} ({exc}); privacy commands need it running"
        ) from exc
    import uuid

    return Person(
        frozenset(uuid.UUID(i) for i in found["lead_ids"]),
        frozenset(found["emails"]),
        frozenset(found["phones"]),
        frozenset(found["names"]),
    )


@privacy_app.command("export")
@friendly
def privacy_export(
    subject: Subject,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here instead of stdout.")] = None,
) -> None:
    """Everything stored about a person, as JSON (from the warehouse, which holds every event)."""
    import json

    from pipeline.adapters.worker_api import post_json

    settings = _settings()
    _person(settings, subject)  # waits until the warehouse has everything
    data = post_json(settings, "/v1/privacy/export", {"subject": subject})
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if out is None:
        sys.stdout.write(text + "\n")
    else:
        out.write_text(text + "\n")
        console.print(f"wrote {out}: {len(data['events'])} events")


@privacy_app.command("erase")
@friendly
def privacy_erase(
    subject: Subject,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the worker.")] = 600.0,
) -> None:
    """Erase a person from the worker's tables, the topics and the warehouse; the
    events stay countable without personal data (see docs/privacy.md)."""
    from pipeline.adapters.kafka.erasure import request_erasure

    settings = _settings()
    person = _person(settings, subject)
    if not person.markers:
        raise LeadflowError(f"nothing is stored about {subject!r}")
    shares = asyncio.run(
        request_erasure(settings.kafka_bootstrap, _topics(settings), subject, person, timeout)
    )
    tables = sum(s.table_entries for s in shares)
    topics = sum(s.topic_partitions for s in shares)
    rows = sum(s.warehouse_rows for s in shares)
    console.print(
        f"erased {len(person.lead_ids)} lead(s): {tables} table entries, "
        f"{topics} topic partitions truncated, {rows} warehouse rows stripped"
    )
    if not all(s.complete for s in shares):
        raise LeadflowError("the erasure is incomplete; see the worker's log, then run it again")


@app.command()
@friendly
def clean(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Delete the state directory (broker data, worker tables, embedded warehouse)."""
    settings = _settings()
    if not yes and not typer.confirm(f"Delete {settings.state_dir}?"):
        raise typer.Exit(1)
    shutil.rmtree(settings.state_dir, ignore_errors=True)
    console.print(f"removed {settings.state_dir}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
