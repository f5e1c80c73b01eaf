"""Nurture programs through the real broker: a cold lead walks its program's
steps in order, leaves it and reaches leads.handoff when it becomes hot, is
recycled when sales returns it, and a restarted worker resumes due steps
without sending one twice. One nurture day lasts one second here."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from pipeline.adapters.worker_api import get_json
from pipeline.config.settings import SHIPPED_RULES, Settings
from pipeline.config.topics import load_topics
from pipeline.dev.harness import WorkerProcess
from schemas.envelope import utcnow
from schemas.lead import LeadHandedOff, LeadNurtured, TouchScheduled
from tests.support.pipeline import Pipeline, crm_outcome
from tests.support.processes import leadflow
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration
COLD = {"purchase_timeframe_months": 12, "decision_maker": True}
CONSENT = {"marketing_email": True}
# Steps 1 s, then 3 s, then 2 s apart; no quiet hours, so the test runs at any hour.
RULES = """
contact_policy:
  max_touches: 10
  per_days: 7
  quiet_hours: null
  weekends: true
programs:
  cold-leads:
    entry: {classes: [cold]}
    steps:
      - {channel: email, content: intro, after_days: 1}
      - {channel: email, content: guide, after_days: 3}
      - {channel: email, content: newsletter, after_days: 2}
  recycle:
    entry: {triggers: [returned, lost]}
    steps:
      - {channel: email, content: check-in, after_days: 30}
"""


def nurture_settings(kafka: str, state: Path) -> Settings:
    rules = state / "rules"
    shutil.copytree(SHIPPED_RULES, rules)
    shipped = (rules / "nurture.yaml").read_text()
    fulfillment = shipped[: shipped.index("contact_policy:")]
    (rules / "nurture.yaml").write_text(fulfillment + RULES)
    return isolated_settings(kafka, state).model_copy(
        update={
            "rules_dir": rules,
            "nurture_day_seconds": 1.0,
            "nurture_scan_seconds": 0.3,
            "operator_keys": {"ops": SecretStr("test-operator-key")},
        }
    )


def touches_of(pipeline: Pipeline, lead: str) -> list[TouchScheduled]:
    return pipeline.wait_for(pipeline.topics.touches, lead)


def nurture_touches(pipeline: Pipeline, lead: str, steps: int) -> list[TouchScheduled]:
    touches = pipeline.wait_for(
        pipeline.topics.touches,
        lead,
        until=lambda found: len({t.payload.step for t in found if t.payload.program}) >= steps,
    )
    return [t for t in touches if t.payload.purpose == "nurture"]


@pytest.fixture(scope="module")
def pipeline(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    state = tmp_path_factory.mktemp("nurture")
    settings = nurture_settings(kafka, state)
    with WorkerProcess(settings, state / "worker.log"):
        yield Pipeline(settings, load_topics(settings.topics_file, settings.topic_prefix))


def test_a_cold_lead_walks_its_programs_steps_in_order(pipeline: Pipeline) -> None:
    body, lead = pipeline.inquiry("walk", answers=COLD, consent=CONSENT)
    pipeline.send(pipeline.topics.inquiries, body)
    (kept,) = pipeline.wait_for(pipeline.topics.nurture, lead)
    assert isinstance(kept, LeadNurtured)
    assert kept.payload.entered == ["cold-leads"] and kept.payload.contact_permissions.email

    touches = nurture_touches(pipeline, lead, 3)
    by_id = {t.event_id: t for t in touches}  # a consumer drops repeats by event_id
    sent = sorted(by_id.values(), key=lambda t: t.emitted_at)
    assert [(t.payload.step, t.payload.content_id) for t in sent] == [
        (1, "intro"),
        (2, "guide"),
        (3, "newsletter"),
    ]
    assert all(t.trace_id == kept.trace_id for t in sent)
    assert sent[0].payload.recipient == body["contact"]["email"]
    # no step before its delay after the one before (3 and 2 nurture days = seconds)
    gaps = [(b.emitted_at - a.emitted_at).total_seconds() for a, b in pairwise(sent)]
    assert gaps[0] >= 3.0 and gaps[1] >= 2.0

    # the answer came within its target (5 minutes) of the inquiry's arrival
    (answer,) = [t for t in touches_of(pipeline, lead) if t.payload.purpose == "fulfillment"]
    assert answer.payload.response_seconds is not None and answer.payload.response_seconds < 300
    funnel = _funnel_row(pipeline, "web_form", lambda row: row["answered"] >= 1)
    assert funnel["answered_in_target"] == funnel["answered"]

    status = _cli(pipeline.settings, "nurture", "status", lead)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "cold-leads (run 1, nurture" in status.stdout and "ended: completed" in status.stdout
    assert status.stdout.count(" touch ") == 3
    with pytest.raises(urllib.error.HTTPError) as refused:  # no operator key, no history
        urllib.request.urlopen(pipeline.settings.web_url + f"/v1/leads/{lead}/nurture", timeout=10)
    assert refused.value.code == 401


def test_a_nurtured_lead_that_becomes_hot_leaves_its_program_for_sales(
    pipeline: Pipeline,
) -> None:
    topics = pipeline.topics
    body, lead = pipeline.inquiry("hot", answers=COLD, consent=CONSENT)
    pipeline.send(topics.inquiries, body)
    nurture_touches(pipeline, lead, 1)  # step 1 went out; step 2 is due 3 s later
    pipeline.send(topics.activity, _activity(pipeline, lead, "meeting_booked"))
    (handoff,) = pipeline.wait_for(topics.handoff, lead)
    assert isinstance(handoff, LeadHandedOff)
    assert handoff.payload.reason == "hot lead"
    permissions = handoff.payload.contact_permissions
    assert permissions is not None and permissions.email and not permissions.call

    time.sleep(6.0)  # longer than the rest of the program would take
    touches = nurture_touches(pipeline, lead, 1)
    assert {t.payload.step for t in touches} == {1}
    assert all(t.emitted_at < handoff.emitted_at for t in touches)

    # sales hands it back: it is recycled
    outcome = crm_outcome(pipeline, lead, "returned", "not ready")
    pipeline.send(topics.feedback, outcome, key=lead.encode())
    nurtured = pipeline.wait_for(
        topics.nurture,
        lead,
        until=lambda found: any(n.payload.entered == ["recycle"] for n in found),
    )
    assert nurtured[-1].payload.reason == "crm: returned (not ready)"


def test_a_restarted_worker_resumes_due_steps_without_duplicates(
    kafka: str, tmp_path: Path
) -> None:
    settings = nurture_settings(kafka, tmp_path)
    pipeline = Pipeline(settings, load_topics(settings.topics_file, settings.topic_prefix))
    body, lead = pipeline.inquiry("restart", answers=COLD, consent=CONSENT)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        pipeline.send(pipeline.topics.inquiries, body)
        nurture_touches(pipeline, lead, 1)
    finally:
        worker.kill()  # a crash, not a clean stop
    time.sleep(4.0)  # step 2 falls due while no worker runs

    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        touches = nurture_touches(pipeline, lead, 3)
        time.sleep(2.0)  # room for a repeat to show up
        touches = nurture_touches(pipeline, lead, 3)
    finally:
        worker.stop()
    steps: dict[int, set[uuid.UUID]] = {}
    for t in touches:
        assert t.payload.step is not None
        steps.setdefault(t.payload.step, set()).add(t.event_id)
    assert sorted(steps) == [1, 2, 3]
    assert all(len(ids) == 1 for ids in steps.values()), steps  # a repeat has the same id


def _activity(pipeline: Pipeline, lead: str, kind: str) -> dict[str, Any]:
    return {
        "activity_id": f"{pipeline.run}-{lead[:8]}-{kind}",
        "occurred_at": utcnow().isoformat(),
        "activity_type": kind,
        "lead_id": lead,
    }


def _funnel_row(
    pipeline: Pipeline, channel: str, until: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The channel's funnel row from the worker's warehouse, once `until` holds."""
    deadline = time.monotonic() + 60
    while True:
        rows = get_json(pipeline.settings, "/v1/reports/pipeline")["rows"]
        row = next((r for r in rows if r["channel"] == channel), None)
        if row is not None and until(row):
            return row
        assert time.monotonic() < deadline, rows
        time.sleep(0.5)


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return leadflow(settings, *args)
