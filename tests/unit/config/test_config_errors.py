"""Rule and configuration mistakes found while running are `ConfigError`s that say
which file and what to change (the CLI shows them without a traceback), not bare
ValueError or TypeError."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from pipeline.config.rules import DEFAULT_ENRICHMENT
from pipeline.domain.enrich.enrichment import (
    CustomerList,
    EnrichmentChain,
    EnrichmentRules,
    ProviderSpec,
)
from pipeline.domain.nurture.policy import ContactPolicy, QuietHours
from pipeline.errors import ConfigError
from pipeline.reporting.events import funnel_by_channel
from tests.support.factories import REFERENCE


def test_quiet_hours_that_leave_no_time_name_the_rule_to_change() -> None:
    always_quiet = ContactPolicy(quiet_hours=QuietHours(start=time(0, 0), end=time(23, 59, 59)))
    monday = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    with pytest.raises(ConfigError, match=r"nurture\.yaml contact_policy.*quiet_hours"):
        always_quiet.open_at(monday, ZoneInfo("Europe/Berlin"))


def test_a_provider_factory_that_makes_no_provider_names_the_rule() -> None:
    rules = EnrichmentRules(
        providers=[ProviderSpec(use="builtins:dict")],
        lead_definition=DEFAULT_ENRICHMENT.lead_definition,
    )
    with pytest.raises(ConfigError, match=r"enrichment\.yaml: builtins:dict did not make"):
        EnrichmentChain.build(rules, REFERENCE, CustomerList())


def test_a_topic_name_that_cannot_go_into_sql_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="LEADFLOW_TOPIC_PREFIX"):
        funnel_by_channel(None, "leads.inquiries'; DROP TABLE x")  # type: ignore[arg-type]
