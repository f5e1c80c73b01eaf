"""The composition root: the one place that builds the worker and imports `agents/`.

Topics, rules and reference data are loaded before the app is built, so a bad
rule file stops the worker at start with a clear message, not mid-stream.
Agents are registered in stage order (capture → identify → enrich → qualify →
nurture → distribute → SLA → report, then the HTTP intake and privacy); the
services they share are built here once and passed in.
"""

from __future__ import annotations

import faust
import structlog

from agents import (
    capture,
    distribute,
    enrich,
    identify,
    intake,
    nurture,
    privacy,
    qualify,
    report,
    sla,
)
from pipeline.config.access import ensure_local_key
from pipeline.config.experiments import RECORD_FILE, check_recorded
from pipeline.config.reference import reference_data
from pipeline.config.rules import Rules
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics
from pipeline.domain.enrich.enrichment import CompanyRecord
from pipeline.worker.faust_app import faust_app
from pipeline.worker.forms import serve_forms
from pipeline.worker.metrics import LagSource, faust_lag, serve_metrics
from pipeline.worker.openapi import serve_openapi
from pipeline.worker.services import CompanyBook, Services
from pipeline.worker.shared_state import ShardedTable
from pipeline.worker.sink import WarehouseSink
from pipeline.worker.stage import Stage
from schemas.envelope import utcnow

STAGES = (capture, identify, enrich, qualify, nurture, distribute, sla, report, intake, privacy)
"""Every agent module, in stage order; each has `register(stage, services)`."""
log = structlog.get_logger("leadflow.worker")


def create_app(settings: Settings, topics: Topics, rules: Rules) -> faust.App:
    """The worker's Faust app with every stage agent, timer, table and endpoint."""
    return build(settings, topics, rules).app


def build(settings: Settings, topics: Topics, rules: Rules) -> Stage:
    """The stage every agent registered on (its `steps` are the app's agents)."""
    app = faust_app(settings, topics.routing.partitions)
    ensure_local_key(settings)
    reference = reference_data(rules.enrichment.company_directory_file)
    stage = Stage(app, settings, topics, rules, reference)
    services = Services(
        companies=CompanyBook(
            ShardedTable(stage, "company-history", topics.captured.partitions, CompanyRecord)
        ),
        warehouse=warehouse_sink(app, settings, topics),
    )
    for module in STAGES:
        module.register(stage, services)
    watch_lag(stage, services.warehouse)
    serve_forms(stage)
    serve_metrics(stage)
    serve_openapi(stage)
    return stage


def guard_experiments(settings: Settings, rules: Rules) -> None:
    """Refuse to start on a running experiment whose definition changed since the last
    start (`pipeline.config.experiments.check_recorded`), unless forced. The worker's
    start calls it (building the app writes no state)."""
    forced = check_recorded(
        settings.state_dir / RECORD_FILE,
        rules.experiments,
        utcnow(),
        settings.force_experiment_changes,
    )
    for change in forced:
        log.warning("experiments.changed_while_running", change=change)


def watch_lag(stage: Stage, sink: WarehouseSink | None) -> None:
    """What `/metrics` measures the lag of: the stages' consumer group (on every
    registry topic), the sink's group, and the mirrors (registered by themselves)."""
    group, names = stage.settings.app_id, {spec.name for spec in stage.topics.all()}
    stage.lag_sources.insert(0, LagSource(group, faust_lag(stage.app, names)))
    if sink is not None:
        stage.lag_sources.append(LagSource(sink.group_id, sink.partition_lag))


def warehouse_sink(app: faust.App, settings: Settings, topics: Topics) -> WarehouseSink | None:
    """The app's one sink, the only way into the warehouse (its thread owns it);
    None where another process owns the warehouse (`LEADFLOW_WAREHOUSE_SINK=false`)."""
    if not settings.warehouse_sink:
        return None
    sink = WarehouseSink(settings, topics)
    app.service(sink)  # type: ignore[arg-type]
    return sink
