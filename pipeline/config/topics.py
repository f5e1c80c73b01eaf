"""The topic registry: `topics.yaml` read into typed specs, and `topics apply`."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, field_validator

from pipeline.config.yaml_model import load_yaml_model
from pipeline.domain.rules import RULE

DAY_MS = 24 * 3600 * 1000


class TopicSpec(BaseModel):
    model_config = RULE

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,200}$")
    description: str
    partitions: int = Field(ge=1, le=1000)
    retention_days: int | None = Field(ge=1)
    cleanup_policy: Literal["delete", "compact"] = "delete"
    key: str
    value: str = Field(description="module:Class of the pydantic value model")
    external: bool = Field(
        default=False,
        description="Written by producers outside Leadflow (channels, trackers, CRMs): "
        "each message is held to LEADFLOW_INPUT_MAX_BYTES before it is read.",
    )

    @field_validator("value")
    @classmethod
    def _importable(cls, ref: str) -> str:
        import_model(ref)
        return ref

    @property
    def model(self) -> type[BaseModel]:
        return import_model(self.value)

    def kafka_config(self) -> dict[str, str]:
        retention = "-1" if self.retention_days is None else str(self.retention_days * DAY_MS)
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": retention}


class Declared(Protocol):
    """What `topics apply` needs of a topic: its name, partition count and config."""

    @property
    def name(self) -> str: ...
    @property
    def partitions(self) -> int: ...
    def kafka_config(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class ChangelogSpec:
    """A table's changelog topic, declared before the worker starts.

    Faust creates a table's changelog itself, but only while the worker starts: a
    consumer that subscribes in between ignores the topic as missing, and the
    table's agent then fails with `PartitionsMismatch` (0 partitions) at its first
    write. Created beforehand, with the table's partition count, it is there in time.
    """

    name: str
    partitions: int

    def kafka_config(self) -> dict[str, str]:
        return {"cleanup.policy": "compact"}  # as Faust declares it


def import_model(ref: str) -> type[BaseModel]:
    module_name, _, class_name = ref.partition(":")
    try:
        found: Any = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(
            f"no model {ref!r}; write it as module:Class, e.g. schemas.lead:LeadCaptured"
        ) from exc
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise ValueError(f"{ref!r} is not a pydantic model")
    return found


class Topics(BaseModel):
    """Every topic by its role; code asks `topics.captured`, never spells a name."""

    model_config = RULE

    inquiries: TopicSpec
    activity: TopicSpec
    lead_activity: TopicSpec
    requalify: TopicSpec
    identify: TopicSpec
    identity_claims: TopicSpec
    activity_identify: TopicSpec
    identity_corrections: TopicSpec
    identity_corrected: TopicSpec
    captured: TopicSpec
    enriched: TopicSpec
    qualified: TopicSpec
    touches: TopicSpec
    nurture: TopicSpec
    nurture_steps: TopicSpec
    handoff: TopicSpec
    routing: TopicSpec
    releases: TopicSpec
    claims: TopicSpec
    sales_ready: TopicSpec
    escalations: TopicSpec
    reminders: TopicSpec
    feedback: TopicSpec
    outcomes: TopicSpec
    outcome_waits: TopicSpec
    rejected: TopicSpec
    erasure: TopicSpec
    erased: TopicSpec

    def all(self) -> list[TopicSpec]:
        return [getattr(self, role) for role in type(self).model_fields]

    def by_name(self, name: str) -> TopicSpec:
        for spec in self.all():
            if spec.name == name:
                return spec
        raise KeyError(name)


class _TopicsFile(BaseModel):
    model_config = RULE
    topics: Topics


def load_topics(path: Path, prefix: str = "") -> Topics:
    """The registry; `prefix` namespaces every name (tests, several tenants on one cluster)."""
    topics = load_yaml_model(path, _TopicsFile).topics
    if not prefix:
        return topics
    return topics.model_copy(
        update={
            role: spec.model_copy(update={"name": prefix + spec.name})
            for role, spec in ((r, getattr(topics, r)) for r in Topics.model_fields)
        }
    )
