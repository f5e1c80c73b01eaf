"""Report: every event on every topic goes into the warehouse (`lead_events`).

The sink is its own consumer group with manual commits, in the order the
quix-streams sinks use: collect a batch (size or time), insert it, and only
after the insert succeeded commit the offsets. A failed insert is retried with
back-off and the offsets stay where they are, so nothing is skipped; repeats
after a crash carry the same `event_id` and are folded by the table engine.
"""

from __future__ import annotations

import os
import uuid

import structlog
from aiohttp.web import HTTPBadRequest
from faust.web import Request, Response, View

from pipeline.adapters.warehouse.clickhouse import AnalystLimits, analyst_query
from pipeline.errors import BadRequest
from pipeline.reporting.dashboard import dashboard_data, render_dashboard
from pipeline.reporting.events import event_counts
from pipeline.reporting.experiments import experiment_list, experiment_report, find
from pipeline.reporting.reports import REPORTS, parse_params, report_inputs, run_report
from pipeline.reporting.timeline import lead_captures, lead_timeline
from pipeline.worker.faust_app import partitions_assigned, tables_ready
from pipeline.worker.services import Services
from pipeline.worker.sink import WarehouseSink
from pipeline.worker.stage import Stage
from schemas.envelope import utcnow

log = structlog.get_logger("leadflow.report")


def register(stage: Stage, services: Services) -> None:
    """Health and readiness; the read side where this worker owns the warehouse."""
    sink = services.warehouse

    @stage.page("/v1/health", keys=None)
    class Health(View):
        """Liveness: 200 while the process serves; `status` says whether its tables are
        recovered ("ok") or still being read from their changelogs ("recovering");
        `pid` which process answers (the demo checks it is its own worker)."""

        async def get(self, request: Request) -> Response:
            stored = sink.inserted if sink is not None else None
            status = "ok" if tables_ready(stage.app) else "recovering"
            return self.json(
                {"status": status, "warehouse_rows_inserted": stored, "pid": os.getpid()}
            )

    @stage.page("/v1/ready", keys=None, needs_tables=True)
    class Ready(View):
        """Readiness: 200 once the group assigned partitions and the tables are
        recovered; 503 "recovering" (Retry-After) or "unassigned" before.

        Health stays 200 meanwhile: a liveness probe that killed a worker for a
        long recovery would only make it start the recovery over."""

        async def get(self, request: Request) -> Response:
            if not partitions_assigned(stage.app):
                return self.json({"status": "unassigned"}, status=503)
            return self.json({"status": "ok"})

    if sink is not None:  # else another process owns the warehouse
        serve_reports(stage, sink)


def _lead_id(text: str) -> uuid.UUID:
    """The lead id of a path, or a 400 answer (`Stage.page` lets aiohttp's answers through)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        body = '{"error": "a lead id is a UUID"}'
        raise HTTPBadRequest(text=body, content_type="application/json") from None


def serve_reports(stage: Stage, sink: WarehouseSink) -> None:
    inputs = report_inputs(stage.rules, stage.settings.rules_dir, stage.topics.inquiries.name)
    limits = AnalystLimits.of(stage.settings)

    @stage.page("/v1/reports")
    class Reports(View):
        async def get(self, request: Request) -> Response:
            return self.json(
                [{"name": r.name, "title": r.title, "by": r.by} for r in REPORTS.values()]
            )

    @stage.page("/v1/reports/{name}")
    class ReportView(View):
        async def get(self, request: Request, name: str) -> Response:
            try:
                params = parse_params(dict(request.query))
                rows = await sink.call(lambda w: run_report(w, name, params, inputs))
            except BadRequest as exc:
                return self.json({"error": str(exc)}, status=400)
            return self.json({"report": name, "rows": rows})

    experiments = stage.rules.experiments.definitions

    @stage.page("/v1/experiments")
    class ExperimentList(View):
        """The experiments of experiments.yaml, with their status now."""

        async def get(self, request: Request) -> Response:
            return self.json(experiment_list(experiments, utcnow()))

    @stage.page("/v1/experiments/{name}")
    class ExperimentView(View):
        """Each variant against the control (`leadflow experiments report`); 404 for
        an experiment experiments.yaml does not declare."""

        async def get(self, request: Request, name: str) -> Response:
            try:
                experiment = find(experiments, name)
            except BadRequest as exc:
                return self.json({"error": str(exc)}, status=404)
            rows = await sink.call(
                lambda w: experiment_report(w, experiment, inputs.answer_target_s)
            )
            return self.json({"experiment": name, "control": experiment.control.name, "rows": rows})

    @stage.page("/v1/sql")
    class Sql(View):
        """Read-only SQL for analysts: the body is one query; rows come back as JSON.
        400 only for the query's fault (`BadQuery`, a limit too), 503 while the
        warehouse is out. In a session of its own (`analyst_call`): reports go on."""

        async def post(self, request: Request) -> Response:
            body = (await request.read()).decode("utf-8", errors="replace")
            try:
                rows = await sink.analyst_call(lambda w: analyst_query(w, body, limits))
            except BadRequest as exc:
                return self.json({"error": str(exc)}, status=400)
            return self.json({"rows": rows})

    @stage.page("/dashboard")
    class Dashboard(View):
        async def get(self, request: Request) -> Response:
            try:
                params = parse_params(dict(request.query))
                data = await sink.call(lambda w: dashboard_data(w, params, inputs))
            except BadRequest as exc:
                return self.json({"error": str(exc)}, status=400)
            return self.html(render_dashboard(data, utcnow()))

    @stage.page("/v1/leads/{lead_id}/timeline")
    class Timeline(View):
        async def get(self, request: Request, lead_id: str) -> Response:
            lead = _lead_id(lead_id)
            return self.json(await sink.call(lambda w: lead_timeline(w, lead)))

    @stage.page("/v1/leads/{lead_id}/captures")
    class Captures(View):
        """The lead's inquiries as captured, for `leadflow lead split` / `lead merge`."""

        async def get(self, request: Request, lead_id: str) -> Response:
            lead = _lead_id(lead_id)
            captures = await sink.call(lambda w: lead_captures(w, lead))
            body = b"[" + b",".join(c.model_dump_json().encode() for c in captures) + b"]"
            return self.bytes(body, content_type="application/json")

    @stage.page("/v1/warehouse/events")
    class EventCounts(View):
        async def get(self, request: Request) -> Response:
            return self.json(await sink.call(event_counts))

    @stage.page("/v1/warehouse/lag")
    class Lag(View):
        async def get(self, request: Request) -> Response:
            return self.json({**await sink.lag(), "inserted": sink.inserted})
