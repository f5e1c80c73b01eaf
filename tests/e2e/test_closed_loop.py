"""The closed loop end to end: demo traffic through the worker, a CRM reporting
contacts, opportunities, wins and losses for the sales-ready leads, and the
reports (HTTP, CLI through the worker, CLI on the warehouse directly) agreeing
with what was sent and with the cost file."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.adapters.kafka.client import publish
from pipeline.config.report_rules import CampaignCosts
from pipeline.config.settings import Settings
from pipeline.config.topics import Topics
from pipeline.config.yaml_model import load_yaml_model
from pipeline.dev.harness import OutcomeWatcher, WorkerProcess
from pipeline.dev.traffic import demo_inquiries
from schemas.inputs import CrmOutcome
from schemas.lead import LeadAssigned
from tests.support.processes import leadflow, started_worker

INQUIRIES = 60
TIMEOUT_S = 180.0
KEY = "test-operator-key"  # isolated_settings' operator key


class Loop:
    def __init__(self, settings: Settings, topics: Topics, worker: WorkerProcess) -> None:
        self.settings, self.topics, self.worker = settings, topics, worker
        self.assigned: dict[str, LeadAssigned] = {}
        self.leads: set[str] = set()
        self.won: dict[str, float] = {}
        self.lost: set[str] = set()


@pytest.fixture(scope="module")
def loop(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    with started_worker(kafka, tmp_path_factory.mktemp("loop")) as (settings, topics, worker):
        result = Loop(settings, topics, worker)
        asyncio.run(_feed(result))
        yield result


async def _feed(loop: Loop) -> None:
    messages = demo_inquiries(INQUIRIES, seed=21, run=f"{uuid.uuid4().hex[:6]}-")
    watcher = OutcomeWatcher(loop.settings.kafka_bootstrap, loop.topics)
    await watcher.start()
    try:
        values = [m.value for m in messages]
        positions = await publish(loop.settings.kafka_bootstrap, loop.topics.inquiries.name, values)
        pending = list(zip(values, positions, strict=True))
        deadline = time.monotonic() + TIMEOUT_S
        while pending and time.monotonic() < deadline:
            await watcher.poll()
            pending = [(v, at) for v, at in pending if not watcher.outcomes.accounted(v, at)]
        assert not pending, f"{len(pending)} inquiries not accounted for"
    finally:
        await watcher.stop()
    outcomes = watcher.outcomes
    loop.assigned = {lead: events[0] for lead, events in outcomes.sales_ready.items()}
    loop.leads = set(outcomes.sales_ready) | outcomes.nurtured
    assert len(loop.assigned) >= 6, "the demo mix should give several sales-ready leads"
    feedback: list[bytes] = []
    for n, (lead, event) in enumerate(sorted(loop.assigned.items())):
        at = event.occurred_at
        feedback.append(_outcome(lead, "contacted", at + timedelta(minutes=2)))
        if n % 3 == 0:
            loop.won[lead] = 1000.0 * (n + 1)
            feedback.append(_outcome(lead, "opportunity", at + timedelta(days=1)))
            feedback.append(_outcome(lead, "won", at + timedelta(days=2), loop.won[lead]))
        elif n % 3 == 1:
            loop.lost.add(lead)
            feedback.append(_outcome(lead, "lost", at + timedelta(days=2), reason="budget"))
    for value in feedback:  # keyed by lead, like a CRM does
        key = CrmOutcome.model_validate_json(value).lead_id
        await publish(
            loop.settings.kafka_bootstrap, loop.topics.feedback.name, [value], str(key).encode()
        )
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        [total] = report(loop, "funnel")
        reached = (total["contacted"], total["won"], total["lost"])
        if reached == (len(loop.assigned), len(loop.won), len(loop.lost)):
            return
        await asyncio.sleep(0.5)
    raise AssertionError("the CRM outcomes did not reach the warehouse")


def _outcome(lead: str, outcome: str, at: Any, amount: float | None = None, **more: str) -> bytes:
    return (
        CrmOutcome(
            outcome_id=f"{lead}-{outcome}",
            lead_id=uuid.UUID(lead),
            occurred_at=at,
            outcome=outcome,  # type: ignore[arg-type]
            amount_eur=amount,
            rep_id=None,
            **more,
        )
        .model_dump_json()
        .encode()
    )


def http(loop: Loop, path: str, body: bytes | None = None, key: str | None = KEY) -> Any:
    request = urllib.request.Request(loop.settings.web_url + path, data=body)
    if key is not None:
        request.add_header("X-Api-Key", key)
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def report(loop: Loop, name: str, **params: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return json.loads(http(loop, f"/v1/reports/{name}?{query}"))["rows"]  # type: ignore[no-any-return]


def cli(loop: Loop, *args: str) -> str:
    done = leadflow(loop.settings, "report", *args, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_funnel_matches_what_the_crm_reported(loop: Loop) -> None:
    [total] = report(loop, "funnel")
    assert total["lead"] == len(loop.leads)
    assert total["routed"] == total["contacted"] == len(loop.assigned)
    assert (total["opportunity"], total["won"], total["lost"]) == (
        len(loop.won),
        len(loop.won),
        len(loop.lost),
    )
    by_channel = report(loop, "funnel", by="channel")
    for stage in ("lead", "mql", "sql", "routed", "won", "lost"):
        assert sum(row[stage] for row in by_channel) == total[stage], stage


def test_revenue_and_roi_per_campaign_follow_the_wins_and_the_cost_file(loop: Loop) -> None:
    revenue: dict[tuple[str, str], float] = defaultdict(float)
    for lead, amount in loop.won.items():
        source = loop.assigned[lead].source
        revenue[(source.channel, source.campaign or "(none)")] += amount
    costs: dict[tuple[str, str], float] = defaultdict(float)
    cost_file = load_yaml_model(loop.settings.rules_dir / "costs.yaml", CampaignCosts)
    for c in cost_file.costs:
        costs[(c.channel, c.campaign)] += c.amount_eur
    rows = report(loop, "money", by="campaign")
    assert sum(r["revenue_eur"] for r in rows) == sum(loop.won.values())
    for row in rows:
        key = (row["channel"], row["campaign"])
        assert row["revenue_eur"] == revenue.get(key, 0), key
        assert row["cost_eur"] == costs.get(key, 0), key
        if costs.get(key):
            assert row["roi"] == round((revenue.get(key, 0) - costs[key]) / costs[key], 4)
    attribution = report(loop, "attribution", by="channel")
    assert attribution and loop.won
    by_channel: dict[str, float] = defaultdict(float)
    for (channel, _), amount in revenue.items():
        by_channel[channel] += amount
    for row in attribution:  # one inquiry per demo lead: every model agrees
        models = ("first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay")
        assert {row[m] for m in models} == {by_channel[row["channel"]]}, row
        for model in ("markov", "shapley"):  # one-touch journeys: the data-driven ones too
            assert row[model] == pytest.approx(by_channel[row["channel"]], abs=0.01), row
    for model in (*models, "markov", "shapley"):
        deals = sum(r[f"{model}_conversions"] for r in attribution)
        assert deals == pytest.approx(len(loop.won), abs=1e-3), model


def test_rep_reports_add_up_to_the_routed_leads(loop: Loop) -> None:
    fairness = report(loop, "fairness")
    assert sum(r["leads"] for r in fairness) == len(loop.assigned)
    performance = report(loop, "performance", by="rep")
    assert sum(r["won"] for r in performance) == len(loop.won)
    assert sum(r["revenue_eur"] for r in performance) == sum(loop.won.values())
    reasons = report(loop, "reasons")
    assert {"kind": "lost", "reason": "budget", "count": len(loop.lost)} in reasons


def test_reports_sql_and_dashboard_need_an_operator_key(loop: Loop) -> None:
    for path in ("/v1/reports/funnel", "/dashboard"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            http(loop, path, key=None)
        assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as wrong:
        http(loop, "/v1/sql", b"SELECT 1", key="not-the-key")
    assert wrong.value.code == 401
    for bad in ("/v1/reports/nope", "/v1/reports/funnel?grain=hour", "/v1/reports/money?by=rep"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            http(loop, bad)
        assert refused.value.code == 400, bad
        assert json.loads(refused.value.read())["error"]
    listed = json.loads(http(loop, "/v1/reports"))
    assert {r["name"] for r in listed} >= {"funnel", "money", "attribution", "anomalies"}
    request = urllib.request.Request(loop.settings.web_url + "/dashboard")
    basic = base64.b64encode(f"anyone:{KEY}".encode()).decode()
    request.add_header("Authorization", f"Basic {basic}")
    with urllib.request.urlopen(request, timeout=60) as response:
        page = response.read().decode()
    assert response.headers["Content-Type"].startswith("text/html")
    assert 'id="dashboard-data"' in page and "chart-attribution" in page


def test_the_sql_endpoint_reads_but_never_writes(loop: Loop) -> None:
    rows = json.loads(http(loop, "/v1/sql", b"SELECT count() AS n FROM leadflow.leads"))["rows"]
    assert rows == [{"n": len(loop.leads)}]
    for statement in (
        b"DROP TABLE leadflow.leads",
        b"INSERT INTO leadflow.campaign_costs (channel) VALUES ('x')",
        b"SELECT 1; DROP TABLE leadflow.leads",
        b"SELECT * FROM file('/etc/hostname', 'LineAsString')",
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            http(loop, "/v1/sql", statement)
        assert refused.value.code == 400, statement
    still = json.loads(http(loop, "/v1/sql", b"SELECT count() AS n FROM leadflow.leads"))["rows"]
    assert still == rows


def test_the_cli_reads_through_the_worker_then_from_the_warehouse(
    loop: Loop, tmp_path: Path
) -> None:
    money = report(loop, "money", by="channel")
    assert json.loads(cli(loop, "money", "--by", "channel", "--format", "json")) == money
    csv_lines = cli(loop, "money", "--by", "channel", "--format", "csv").splitlines()
    assert csv_lines[0].startswith("channel,lead,mql,sql,won,revenue_eur,cost_eur")
    assert len(csv_lines) == len(money) + 1
    attribution = report(loop, "attribution", by="campaign")
    printed = cli(loop, "attribution", "--by", "campaign", "--format", "json")
    assert json.loads(printed) == attribution  # every model's columns, the CLI as over HTTP
    assert re.match(r"lag \d+ messages \(\d+ unread, \d+ in the batch\)", cli(loop, "sink"))
    funnel = report(loop, "funnel", by="channel")

    loop.worker.stop()  # now nobody owns the embedded warehouse: the CLI opens it
    assert json.loads(cli(loop, "funnel", "--by", "channel", "--format", "json")) == funnel
    out = tmp_path / "dashboard.html"
    cli(loop, "dashboard", "--out", str(out))
    assert 'id="dashboard-data"' in out.read_text()
