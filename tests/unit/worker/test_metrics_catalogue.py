"""The Grafana dashboard (deploy/grafana) shows metrics the worker has: the file
parses, and every expression names only metrics `pipeline/worker/metrics.py`
registers, with the suffixes Prometheus gives their type."""

from __future__ import annotations

import json
import re

from prometheus_client import generate_latest

from pipeline.config.settings import PROJECT_ROOT
from pipeline.worker import metrics

DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "leadflow-worker.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exposed() -> set[str]:
    """Every sample name the worker's page can carry: each registered family with
    the suffixes of its type (a labelled family has no samples before its first use)."""
    return {
        family.name + suffix
        for family in metrics.REGISTRY.collect()
        for suffix in SUFFIXES[family.type]
    }


def test_the_page_is_prometheus_text_with_every_family_declared() -> None:
    text = generate_latest(metrics.REGISTRY).decode()
    for name in ("leadflow_consumer_lag", "leadflow_timers_held", "leadflow_http_requests_total"):
        assert f"# TYPE {name} " in text


def expressions(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for value in node.values() for e in expressions(value)]
    if isinstance(node, list):
        return [e for value in node for e in expressions(value)]
    return []


def test_every_dashboard_expression_names_a_metric_the_worker_serves() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = expressions(dashboard["panels"])
    assert len(exprs) >= 13
    known = exposed()
    shown = set()
    for expr in exprs:
        named = set(re.findall(r"\b((?:leadflow|process)_[a-z_]+)\b", expr))
        assert named, expr
        assert named <= known, (expr, named - known)
        shown |= named
    # and the other way round: every family the issue asks for has a panel
    for family in (
        "leadflow_stage_messages_in_total",
        "leadflow_stage_messages_emitted_total",
        "leadflow_stage_messages_rejected_total",
        "leadflow_stage_step_seconds_bucket",
        "leadflow_consumer_lag",
        "leadflow_sink_batch_rows_count",
        "leadflow_sink_insert_seconds_bucket",
        "leadflow_timers_held",
        "leadflow_timers_due",
        "leadflow_sla_reminders_total",
        "leadflow_sla_breaches_total",
        "leadflow_http_requests_total",
    ):
        assert family in shown, family


def test_a_timer_reports_what_it_holds_through_one_call() -> None:
    """The call `pipeline/worker/timers.py` makes at each scan."""
    metrics.timers("sla-due", held=7, due=2)
    assert metrics.REGISTRY.get_sample_value("leadflow_timers_held", {"timer": "sla-due"}) == 7
    assert metrics.REGISTRY.get_sample_value("leadflow_timers_due", {"timer": "sla-due"}) == 2


def test_sla_events_are_counted_when_a_stage_sends_them() -> None:
    before = metrics.REGISTRY.get_sample_value("leadflow_sla_breaches_total") or 0
    metrics.emitted("timers", "t.leads.escalations", "SlaBreached", [])
    metrics.emitted("timers", "t.leads.escalations", "SlaReminderDue", [])
    assert metrics.REGISTRY.get_sample_value("leadflow_sla_breaches_total") == before + 1
