"""A live experiment through the real broker: the worker runs a scoring experiment,
each lead's variant follows from its lead id, the variants' rules decide
differently, every decision records its rules and variant, and the experiment
report over the warehouse compares both variants. A running experiment changed
under the worker's record stops the next start."""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.error
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.adapters.worker_api import get_json, wait_until_stored
from pipeline.config.experiments import RECORD_FILE
from pipeline.config.rules import Rules, load_rules
from pipeline.config.settings import SHIPPED_RULES
from pipeline.config.topics import load_topics
from pipeline.dev.harness import WorkerProcess
from schemas.envelope import utcnow
from schemas.lead import LeadAssigned, LeadNurtured, LeadQualified, TouchScheduled, VariantAssigned
from tests.support.pipeline import Pipeline
from tests.support.processes import leadflow
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration
NAME = "sales-bar"
SALES, CONTROL = "straight-to-sales", "control"
PER_VARIANT = 3
ANSWER = "answer-pack"  # a second experiment at the same time, on nurture
SHORT, USUAL = "short-answer", "info-pack"
QUOTAS = {(CONTROL, USUAL): 2, (CONTROL, SHORT): 1, (SALES, USUAL): 1, (SALES, SHORT): 2}
"""Leads per pair of variants: three per scoring variant, both answers in each experiment."""


def experiment_yaml(share: int = 50) -> str:
    now = utcnow()
    return f"""experiments:
  - name: {NAME}
    description: Would sales take every lead?
    start: {(now - timedelta(days=1)).isoformat()}
    end: {(now + timedelta(days=1)).isoformat()}
    variants:
      - {{name: {CONTROL}, share: {share}}}
      - name: {SALES}
        share: {100 - share}
        overrides:
          scoring: {{version: every lead an SQL, thresholds: {{mql: 0, sql: 0}}}}
  - name: {ANSWER}
    start: {(now - timedelta(days=1)).isoformat()}
    end: {(now + timedelta(days=2)).isoformat()}
    variants:
      - {{name: {USUAL}, share: 50}}
      - name: {SHORT}
        share: 50
        overrides:
          nurture: {{fulfillment: {{content_by_product: {{crm-suite: crm-suite-in-brief}}}}}}
"""


class Run:
    def __init__(self, pipeline: Pipeline, rules: Rules, rules_dir: Path) -> None:
        self.pipeline, self.rules, self.rules_dir = pipeline, rules, rules_dir
        self.leads: dict[str, list[str]] = {CONTROL: [], SALES: []}


@pytest.fixture(scope="module")
def run(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    state = tmp_path_factory.mktemp("experiments")
    rules_dir = state / "rules"
    shutil.copytree(SHIPPED_RULES, rules_dir)
    (rules_dir / "experiments.yaml").write_text(experiment_yaml())
    settings = isolated_settings(kafka, state).model_copy(update={"rules_dir": rules_dir})
    with WorkerProcess(settings, state / "worker.log"):
        pipeline = Pipeline(settings, load_topics(settings.topics_file, settings.topic_prefix))
        result = Run(pipeline, load_rules(rules_dir), rules_dir)
        definitions = result.rules.experiments.definitions
        scoring, answers = definitions.named(NAME), definitions.named(ANSWER)
        assert scoring is not None and answers is not None
        bodies, n, wanted = [], 0, dict(QUOTAS)
        # namesakes at one company (Eva Roth at x.de, each with her own address): each
        # is a lead of her own, in the variants her lead id gives
        while any(wanted.values()):
            body, lead = pipeline.inquiry(f"ab{n}")
            n += 1
            pair = (
                scoring.variant_of(uuid.UUID(lead)).name,
                answers.variant_of(uuid.UUID(lead)).name,
            )
            if wanted[pair]:
                wanted[pair] -= 1
                result.leads[pair[0]].append(lead)
                bodies.append(body)
        pipeline.send(pipeline.topics.inquiries, *bodies)
        yield result


def test_each_lead_runs_its_variants_rules_and_every_decision_records_them(run: Run) -> None:
    pipeline, base = run.pipeline, run.rules.base.versions
    answers = run.rules.experiments.definitions.named(ANSWER)
    assert answers is not None
    for variant, leads in run.leads.items():
        for lead in leads:
            short = answers.variant_of(uuid.UUID(lead)).name == SHORT
            arm = [
                VariantAssigned(experiment=NAME, variant=variant),
                VariantAssigned(experiment=ANSWER, variant=SHORT if short else USUAL),
            ]
            (qualified, *_) = pipeline.wait_for(pipeline.topics.qualified, lead)
            assert isinstance(qualified, LeadQualified)
            assert qualified.experiments == arm
            assert qualified.schema_version == "1.3"
            chosen = run.rules.for_lead(uuid.UUID(lead), utcnow())
            assert qualified.rules == chosen.versions["scoring"]
            (answer, *_) = pipeline.wait_for(pipeline.topics.touches, lead)
            assert isinstance(answer, TouchScheduled) and answer.payload.purpose == "fulfillment"
            assert (answer.rules, answer.experiments) == (chosen.versions["nurture"], arm)
            assert answer.payload.content_id == (
                "crm-suite-in-brief" if short else "info-pack-crm-suite"
            )
            assert (answer.rules != base["nurture"]) == short
            if variant == SALES:  # the variant's bar: every lead goes to sales
                assert qualified.payload.status == "sql" and qualified.payload.decision == "sales"
                assert qualified.rules is not None
                assert qualified.rules.name == f"every lead an SQL ({NAME}/{SALES})"
                assert qualified.rules.hash != base["scoring"].hash
                (assigned, *_) = pipeline.wait_for(pipeline.topics.sales_ready, lead)
                assert isinstance(assigned, LeadAssigned)
                assert (assigned.rules, assigned.experiments) == (base["routing"], arm)
            else:  # the directory's bar (MQL 12, SQL 30): a bare inquiry is nurtured
                assert qualified.payload.decision == "nurture"
                assert qualified.rules == base["scoring"]
                (kept, *_) = pipeline.wait_for(pipeline.topics.nurture, lead)
                assert isinstance(kept, LeadNurtured)
                assert (kept.rules, kept.experiments) == (chosen.versions["nurture"], arm)


def report_rows(run: Run) -> list[dict[str, Any]]:
    settings = run.pipeline.settings
    asyncio.run(wait_until_stored(settings))
    answer = get_json(settings, f"/v1/experiments/{NAME}")
    assert answer["control"] == CONTROL
    rows: list[dict[str, Any]] = answer["rows"]
    return rows


def test_the_report_over_the_warehouse_compares_both_variants(run: Run) -> None:
    test_each_lead_runs_its_variants_rules_and_every_decision_records_them(run)  # all decided
    rows = report_rows(run)
    by = {(r["measure"], r["variant"]): r for r in rows}
    for variant in (CONTROL, SALES):
        assert by[("lead_to_mql", variant)]["leads"] == PER_VARIANT
        answered = by[("answered_in_target", variant)]
        assert answered["n"] == PER_VARIANT and answered["value"] == 1.0  # answered at once
    control, sales = by[("lead_to_mql", CONTROL)], by[("lead_to_mql", SALES)]
    assert (control["value"], sales["value"]) == (0.0, 1.0)
    assert control["statement"] == "control" and control["ci_high"] == pytest.approx(
        0.5615, abs=1e-4
    )
    assert sales["difference"] == 1.0 and sales["significant"] is True
    assert sales["statement"] == "+100.0 points: significant at 95 %"
    assert by[("mql_to_sql", SALES)]["value"] == 1.0 and by[("mql_to_sql", CONTROL)]["n"] == 0
    assert by[("mql_to_sql", SALES)]["statement"] == "not enough data yet"  # no control MQLs
    assert by[("revenue_per_lead", SALES)]["statement"] == "not enough data yet"  # nothing won

    settings = run.pipeline.settings
    cli = leadflow(settings, "experiments", "report", NAME, "--format", "json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == rows
    table = leadflow(settings, "experiments", "report", NAME)
    assert "significant at 95 %" in table.stdout and "control: control" in table.stdout
    listed = leadflow(settings, "experiments", "list", "--format", "json")
    assert [(e["experiment"], e["status"]) for e in json.loads(listed.stdout)] == [
        (NAME, "running"),
        (ANSWER, "running"),
    ]

    by_rules = leadflow(settings, "report", "rules", "--format", "json")
    assert by_rules.returncode == 0, by_rules.stderr
    decided = json.loads(by_rules.stdout)
    scoring = {
        (r["rules"], r["outcome"], r["leads"]) for r in decided if r["decision"] == "LeadQualified"
    }
    assert scoring == {  # what each scoring rule set decided
        ("scoring.yaml", "nurture", PER_VARIANT),
        (f"every lead an SQL ({NAME}/{SALES})", "sales", PER_VARIANT),
    }
    answered = {(r["rules"], r["leads"]) for r in decided if r["outcome"] == "fulfillment"}
    assert answered == {("nurture.yaml", 3), (f"nurture.yaml ({ANSWER}/{SHORT})", 3)}

    lead = run.leads[SALES][0]
    timeline = get_json(settings, f"/v1/leads/{lead}/timeline")
    told = {e["event_type"]: e["rules"] for e in timeline}
    assert f"{NAME}: {SALES}, {ANSWER}: " in told["LeadQualified"]
    assert told["LeadQualified"].startswith(f"every lead an SQL ({NAME}/{SALES}) #")
    assert told["LeadCaptured"] == ""  # no decision, no rules

    with pytest.raises(urllib.error.HTTPError) as unknown:
        get_json(settings, "/v1/experiments/no-such-test")
    assert unknown.value.code == 404

    # the dashboard's experiments panel: the same rows, each experiment named
    out = run.pipeline.settings.state_dir / "dashboard.html"
    made = leadflow(settings, "report", "dashboard", "--out", str(out))
    assert made.returncode == 0, made.stderr
    html = out.read_text()
    assert 'id="table-experiments"' in html
    start = html.index('id="dashboard-data">') + len('id="dashboard-data">')
    panel = json.loads(html[start : html.index("</script>", start)])["experiments"]
    assert {r["experiment"] for r in panel} == {NAME, ANSWER}
    ours = [
        {k: v for k, v in r.items() if k not in ("experiment", "share")}
        for r in panel
        if r["experiment"] == NAME
    ]
    assert ours == rows
    assert all(
        r["share"] == (r["measure"] != "minutes_to_contact" and r["measure"] != "revenue_per_lead")
        for r in panel
    )


def test_a_running_experiment_changed_since_the_start_stops_the_next_start(run: Run) -> None:
    settings, path = run.pipeline.settings, run.rules_dir / "experiments.yaml"
    record = settings.state_dir / RECORD_FILE
    recorded = json.loads(record.read_text())
    assert recorded[NAME]["hash"] == run.rules.experiments.hashes[NAME]  # the worker's start
    kept = path.read_text()
    changed = kept.replace(f"{{name: {CONTROL}, share: 50}}", f"{{name: {CONTROL}, share: 40}}")
    path.write_text(changed.replace("share: 50\n", "share: 60\n", 1))
    nowhere = {"LEADFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:1"}  # a forced start ends at the broker
    try:
        refused = leadflow(settings, "worker")
        forced = leadflow(settings, "worker", "--force", env=nowhere)
    finally:
        path.write_text(kept)
    assert refused.returncode == 1
    told = refused.stdout + refused.stderr
    assert f"{NAME} changed while it runs" in told and "--force" in told
    assert "Traceback" not in told
    # forced: past the check (logged), the new definition recorded, then no broker there
    assert forced.returncode == 1 and "no Kafka broker answers at 127.0.0.1:1" in forced.stdout
    assert "experiments.changed_while_running" in forced.stdout + forced.stderr
    now = json.loads(record.read_text())
    assert now[NAME]["hash"] != recorded[NAME]["hash"] and now[ANSWER] == recorded[ANSWER]
