"""Enrich and qualify through the real broker: the worker as a child process,
inquiries, activities and CRM outcomes in, the stage's topics read back."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.config.settings import Settings
from pipeline.config.topics import load_topics
from pipeline.config.yaml_model import load_yaml_model
from pipeline.dev.harness import WorkerProcess
from pipeline.domain.qualify.scoring import ScoringModel
from schemas.envelope import utcnow
from schemas.lead import LeadEnriched
from tests.support.pipeline import TIMEOUT_S, Pipeline, crm_outcome
from tests.support.processes import leadflow
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    state: Path = tmp_path_factory.mktemp("qualify")
    settings = isolated_settings(kafka, state)
    worker = WorkerProcess(settings, state / "worker.log")
    worker.start()
    try:
        yield Pipeline(settings, load_topics(settings.topics_file, settings.topic_prefix))
    finally:
        worker.stop()


def test_an_inquiry_is_enriched_from_directory_and_postal_table(pipeline: Pipeline) -> None:
    body, lead = pipeline.inquiry(
        "dir",
        contact={
            "email": "eva.roth@nordlicht-software.de",
            "postal_code": "20095",
            "country": "DE",
        },
    )
    pipeline.send(pipeline.topics.inquiries, body)
    (event,) = pipeline.wait_for(pipeline.topics.enriched, lead)
    assert isinstance(event, LeadEnriched)
    company, territory = event.payload.company, event.payload.territory
    assert company is not None and territory is not None
    assert (company.name, company.industry, company.size_band) == (
        "Nordlicht Software GmbH",
        "IT",
        "50-249",
    )
    assert (territory.state, territory.territory) == ("Hamburg", "DE-Nord")
    assert event.payload.missing is not None
    assert "decision_maker" in event.payload.missing.should


def _activity(pipeline: Pipeline, lead: str, n: str, kind: str) -> dict[str, Any]:
    return {
        "activity_id": f"{pipeline.run}-{lead[:8]}-{n}",
        "occurred_at": utcnow().isoformat(),
        "activity_type": kind,
        "lead_id": lead,
    }


def test_a_warm_lead_that_books_a_meeting_becomes_hot_and_reaches_handoff(
    pipeline: Pipeline,
) -> None:
    topics = pipeline.topics
    body, lead = pipeline.inquiry("warm", answers={"purchase_timeframe_months": 3})
    pipeline.send(topics.inquiries, body)
    (first,) = pipeline.wait_for(topics.qualified, lead)
    assert (first.payload.lead_class, first.payload.decision) == ("warm", "nurture")

    # tracking tools key by e-mail or not at all: the attach agent re-keys by lead
    pipeline.send(topics.activity, _activity(pipeline, lead, "1", "meeting_booked"))
    qualified = pipeline.wait_for(topics.qualified, lead, until=lambda found: len(found) >= 2)
    hot = qualified[-1].payload
    assert (hot.lead_class, hot.status, hot.decision) == ("hot", "sql", "sales")
    assert (hot.fast_lane, hot.trigger, hot.iteration) == (
        "meeting_booked",
        "activity:meeting_booked",
        2,
    )
    (handoff,) = pipeline.wait_for(topics.handoff, lead)
    assert handoff.payload.qualification.lead_class == "hot"


def test_a_lead_re_qualified_max_times_retires(pipeline: Pipeline) -> None:
    topics = pipeline.topics
    body, lead = pipeline.inquiry("cold", answers={"purchase_timeframe_months": 12})
    pipeline.send(topics.inquiries, body)
    pipeline.wait_for(topics.qualified, lead)
    limit = load_yaml_model(pipeline.settings.rules_dir / "scoring.yaml", ScoringModel)
    views = [
        _activity(pipeline, lead, str(n), "page_view")
        for n in range(limit.retire.max_iterations - 1)
    ]
    pipeline.send(topics.activity, *views)
    qualified = pipeline.wait_for(
        topics.qualified, lead, until=lambda found: found[-1].payload.decision == "retire"
    )
    assert [q.payload.decision for q in qualified] == ["nurture", "retire"]
    retired = qualified[-1].payload
    assert (retired.status, retired.iteration) == ("retired", limit.retire.max_iterations)
    assert retired.profile.contact.email == body["contact"]["email"]  # the data stays


def test_a_lead_returned_by_sales_goes_back_to_nurture(pipeline: Pipeline) -> None:
    topics = pipeline.topics
    body, lead = pipeline.inquiry("hot", answers={"purchase_timeframe_months": 0})
    pipeline.send(topics.inquiries, body)
    (first,) = pipeline.wait_for(topics.qualified, lead)
    assert first.payload.decision == "sales"
    outcome = crm_outcome(pipeline, lead, "returned", "no budget this year")
    pipeline.send(topics.feedback, outcome, key=lead.encode())
    qualified = pipeline.wait_for(topics.qualified, lead, until=lambda found: len(found) >= 2)
    assert (qualified[-1].payload.decision, qualified[-1].payload.trigger) == (
        "nurture",
        "crm:returned",
    )


def test_won_and_lost_outcomes_teach_the_win_probability_live(pipeline: Pipeline) -> None:
    topics = pipeline.topics
    needed = load_yaml_model(
        pipeline.settings.rules_dir / "scoring.yaml", ScoringModel
    ).predictive.min_outcomes
    closed: list[tuple[str, str]] = []
    for n in range(needed):
        industry = "IT" if n % 2 else "Retail"
        won = (industry == "IT") != (n % 8 in (0, 1))  # IT won 7 of 10, Retail lost 7 of 10
        body, lead = pipeline.inquiry(
            f"deal{n}", answers={"industry": industry, "purchase_timeframe_months": 12}
        )
        pipeline.send(topics.inquiries, body)
        closed.append((lead, "won" if won else "lost"))
    for lead, _ in closed:
        (first,) = pipeline.wait_for(topics.qualified, lead)
        assert first.payload.win_probability is None  # not enough deals closed yet
    for n, (lead, result) in enumerate(closed):
        outcome = {
            "outcome_id": f"{pipeline.run}-deal{n}",
            "lead_id": lead,
            "occurred_at": utcnow().isoformat(),
            "outcome": result,
        }
        pipeline.send(topics.feedback, outcome, key=lead.encode())

    def probability(industry: str, n: int) -> float:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            body, lead = pipeline.inquiry(
                f"new-{industry}-{n}",
                answers={"industry": industry, "purchase_timeframe_months": 12},
            )
            pipeline.send(topics.inquiries, body)
            (event,) = pipeline.wait_for(topics.qualified, lead)
            if event.payload.win_probability is not None or time.monotonic() > deadline:
                assert event.payload.decision == "nurture"  # reported, not overriding
                return float(event.payload.win_probability)
            n += 1  # the outcomes are still on their way: ask with a new lead

    # 10 won, 10 lost; only the industry differs: (7+1)/(3+1) = 2 → 2/3, and 1/3 for Retail
    assert round(probability("IT", 0), 3) == 0.667
    assert round(probability("Retail", 100), 3) == 0.333


def _explain(settings: Settings, lead: str, **env: str) -> subprocess.CompletedProcess[str]:
    return leadflow(settings, "rules", "explain", lead, timeout=TIMEOUT_S, env=env)


def test_rules_explain_asks_the_worker_and_falls_back_to_the_topic(pipeline: Pipeline) -> None:
    body, lead = pipeline.inquiry("explain", answers={"purchase_timeframe_months": 10})
    pipeline.send(pipeline.topics.inquiries, body)
    pipeline.wait_for(pipeline.topics.qualified, lead)
    pipeline.send(pipeline.topics.activity, _activity(pipeline, lead, "x", "email_clicked"))
    deadline = time.monotonic() + TIMEOUT_S
    while True:  # the click is re-qualified silently (same outcome): only the worker knows
        live = _explain(pipeline.settings, lead)
        if "behaviour 2" in live.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert live.returncode == 0, live.stdout + live.stderr
    assert "fit 4 + behaviour 2" in live.stdout and "qualification #2" in live.stdout

    from_topic = _explain(pipeline.settings, lead, LEADFLOW_WEB_PORT="1")  # no worker there
    assert from_topic.returncode == 0, from_topic.stdout + from_topic.stderr
    assert "fit 4 + behaviour 0" in from_topic.stdout and "qualification #1" in from_topic.stdout


def test_internal_history_knows_earlier_inquiries_and_won_customers(pipeline: Pipeline) -> None:
    topics = pipeline.topics
    domain = f"kunde-{pipeline.run}.de"
    first, lead1 = pipeline.inquiry("hist1", contact={"email": f"a@{domain}"})
    pipeline.send(topics.inquiries, first)
    (seen1,) = pipeline.wait_for(topics.enriched, lead1)
    assert seen1.payload.company.earlier_inquiries == 0 and not seen1.payload.company.customer
    pipeline.wait_for(topics.qualified, lead1)
    won = {
        "outcome_id": f"{pipeline.run}-hist-won",
        "lead_id": lead1,
        "occurred_at": utcnow().isoformat(),
        "outcome": "won",
    }
    pipeline.send(topics.feedback, won, key=lead1.encode())

    deadline = time.monotonic() + TIMEOUT_S
    n = 2
    while True:  # the won outcome travels through the qualify agent first
        body, lead = pipeline.inquiry(f"hist{n}", contact={"email": f"b{n}@{domain}"})
        pipeline.send(topics.inquiries, body)
        (seen,) = pipeline.wait_for(topics.enriched, lead)
        if seen.payload.company.customer or time.monotonic() > deadline:
            break
        n += 1
    company = seen.payload.company
    assert company.customer and company.earlier_inquiries == n - 1
    sources = {e.field: e.provider for e in seen.payload.enrichments}
    assert sources["company.customer"] == "internal_history"
