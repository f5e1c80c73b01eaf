"""A running deployment's state is named after the app (issue 16 point 9): Faust keeps
a table in the changelog topic `<app id>-<table>-changelog` and a local store of
that name, so a renamed table starts empty after an upgrade, and the warehouse,
reports and CRMs know an event by its `event_type`. These names stay as the flat
layout (commit f604e56) had them; `tests/e2e/test_upgrade_from_flat_layout.py`
runs the old worker and then this one on the same state.

The expected names were taken once from the old layout: `git archive f604e56`
into a scratch directory, and there, with PYTHONPATH set to it, a script built
`pipeline.app.create_app` (memory table store) with `faust.App.timer` wrapped as
in `timer_names` below, and printed `sorted(app.agents)`, each table's name and
partitions, the timer names, and every `event_type` default of the models in its
`schemas/`. The same script on the layered layout printed the same.
"""

from __future__ import annotations

import importlib
import pkgutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import faust
import pytest
from mode.utils.objects import qualname

import schemas
from pipeline.bootstrap import create_app
from pipeline.config.rules import load_rules
from pipeline.config.settings import load_settings
from pipeline.config.topics import load_topics
from schemas.envelope import EventBase

AGENTS = {
    "attach-activity",
    "capture",
    "claim",
    "correct-identity",
    "crm-feedback",
    "distribute",
    "enrich",
    "erase",
    "fulfill",
    "identify",
    "identify-activity",
    "identity-claims",
    "known-lead",
    "nurture",
    "nurture-activity",
    "nurture-feedback",
    "nurture-step",
    "outcome-wait",
    "qualify",
    "release",
    "requalify-activity",
    "requalify-feedback",
    "requalify-interval",
    "route",
    "sla-breached",
    "sla-reminded",
    "sla-start",
}
TABLES = {  # name: partitions (a changelog's partition count must not change either)
    "company-history": 6,
    "identity-lead": 6,
    "identity-waiting-activities": 6,
    "nurture-due": 6,
    "nurture-due-index": 6,
    "nurture-leads": 6,
    "qualify-due": 6,
    "qualify-due-index": 6,
    "qualify-leads": 6,
    "qualify-win-counts": 6,
    "routing-decision": 6,
    "routing-lead-queue": 6,
    "routing-pull-line": 6,
    "routing-pull-parked": 6,
    "routing-queue-state": 6,
    "routing-waiting": 6,
    "sla-clock": 6,
    "sla-due": 6,
    "sla-due-index": 6,
    "sla-early-due": 6,
    "sla-early-due-index": 6,
    "sla-early-outcomes": 6,
    "sla-known-leads": 6,
}
TIMERS = {"nurture-due-scan", "qualify-due-scan", "sla-due-scan", "sla-early-due-scan"}
EVENT_TYPES = {
    "ActivityRecorded",
    "ActivityUnattached",
    "ClaimRequested",
    "CorrectIdentity",
    "EraseLead",
    "IdentityClaimed",
    "IdentityCorrected",
    "InquiryAccepted",
    "LeadAssigned",
    "LeadCaptured",
    "LeadEnriched",
    "LeadErased",
    "LeadHandedOff",
    "LeadNurtured",
    "LeadQualified",
    "LeadReleased",
    "LeadRouted",
    "MessageRejected",
    "NurtureStepDue",
    "OutcomeRecorded",
    "OutcomeWaitExpired",
    "RequalificationDue",
    "SlaBreached",
    "SlaReminderDue",
    "TouchScheduled",
}
APP_ID = "leadflow-upgrade"


@pytest.fixture
def timer_names(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every timer an app gets from now on, as Faust names it (`name`, else
    the function's qualified name); Faust keeps no list of its timers."""
    names: list[str] = []
    timer = faust.App.timer

    def recorded(app: faust.App, interval: float, *args: Any, **kwargs: Any) -> Callable:
        decorate = timer(app, interval, *args, **kwargs)

        def named(fun: Callable) -> Callable:
            names.append(kwargs.get("name") or qualname(fun))
            return decorate(fun)

        return named

    monkeypatch.setattr(faust.App, "timer", recorded)
    return names


@pytest.fixture
def app(tmp_path: Path, timer_names: list[str]) -> faust.App:
    """The worker's app, built and not started; its broker address is a socket
    nothing but this test listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        settings = load_settings(
            kafka_bootstrap=f"127.0.0.1:{listener.getsockname()[1]}",
            app_id=APP_ID,
            state_dir=tmp_path,
            table_store="memory://",
            operator_keys={"tests": "test-operator-key"},
        )
        built = create_app(
            settings,
            load_topics(settings.topics_file, settings.topic_prefix),
            load_rules(settings.rules_dir),
        )
        with pytest.raises(BlockingIOError):
            listener.accept()  # building the app never called the broker
    assert list(tmp_path.iterdir()) == []  # nor wrote state
    return built


def test_agent_names_stay(app: faust.App) -> None:
    assert set(app.agents) == AGENTS


def test_table_names_partitions_and_changelog_topics_stay(app: faust.App) -> None:
    assert {name: table.partitions for name, table in app.tables.items()} == TABLES
    changelogs = {table.changelog_topic.get_topic_name() for table in app.tables.values()}
    assert changelogs == {f"{APP_ID}-{name}-changelog" for name in TABLES}


def test_timer_names_stay(app: faust.App, timer_names: list[str]) -> None:
    assert sorted(timer_names) == sorted(TIMERS)  # each once


def event_types() -> dict[str, str]:
    """Every event model in `schemas/` and its `event_type` literal."""
    found: dict[str, str] = {}
    for module in pkgutil.iter_modules(schemas.__path__):
        namespace = vars(importlib.import_module(f"schemas.{module.name}"))
        for model in namespace.values():
            if not (isinstance(model, type) and issubclass(model, EventBase)):
                continue
            field = model.model_fields["event_type"]
            if isinstance(field.default, str):
                assert get_args(field.annotation) == (field.default,), model
                found[model.__name__] = field.default
    return found


def test_event_type_literals_stay() -> None:
    assert set(event_types().values()) == EVENT_TYPES
