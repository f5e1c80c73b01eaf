from pathlib import Path

import pytest
import yaml

from pipeline.config.asyncapi import asyncapi_document, export_schemas
from pipeline.config.settings import SHIPPED_TOPICS
from pipeline.config.topics import Topics, load_topics
from pipeline.errors import ConfigError

TOPICS = load_topics(SHIPPED_TOPICS)
REQUIRED = {
    "leads.inquiries", "leads.activity", "leads.captured", "leads.enriched", "leads.qualified",
    "leads.touches", "leads.handoff", "leads.sales-ready", "leads.escalations", "crm.feedback",
    "leads.rejected",
}  # fmt: skip


def test_every_topic_of_the_architecture_is_registered() -> None:
    assert {spec.name for spec in TOPICS.all()} >= REQUIRED


def test_each_value_model_belongs_to_one_topic() -> None:
    models = [spec.model for spec in TOPICS.all()]
    assert len(models) == len(set(models))


def test_a_prefix_renames_every_topic() -> None:
    prefixed = load_topics(SHIPPED_TOPICS, prefix="t1.")
    assert all(spec.name.startswith("t1.") for spec in prefixed.all())
    assert prefixed.sales_ready.name == "t1.leads.sales-ready"


def test_retention_and_compaction_become_kafka_settings() -> None:
    assert TOPICS.rejected.kafka_config() == {"cleanup.policy": "delete", "retention.ms": "-1"}
    assert TOPICS.captured.kafka_config()["retention.ms"] == str(30 * 24 * 3600 * 1000)


def test_a_wrong_value_model_is_a_clear_config_error(tmp_path: Path) -> None:
    data = yaml.safe_load((SHIPPED_TOPICS).read_text())
    data["topics"]["captured"]["value"] = "schemas.lead:NoSuchModel"
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"topics\.captured\.value.*module:Class"):
        load_topics(path)


def test_a_missing_topic_is_a_config_error(tmp_path: Path) -> None:
    data = yaml.safe_load((SHIPPED_TOPICS).read_text())
    del data["topics"]["rejected"]
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"topics\.rejected: Field required"):
        load_topics(path)


def test_asyncapi_names_every_topic_with_its_key_and_payload() -> None:
    doc = asyncapi_document(TOPICS, "0.1.0")
    assert doc["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert addresses == {spec.name for spec in TOPICS.all()}
    sales = doc["components"]["messages"]["LeadAssigned"]
    assert sales["bindings"]["kafka"]["key"]["description"] == "lead_id"
    assert sales["payload"] == {"$ref": "#/components/schemas/LeadAssigned"}
    schemas = doc["components"]["schemas"]
    assert {"LeadAssigned", "Owner", "Inquiry", "MessageRejected"} <= set(schemas)
    assert doc["operations"]["receive_inquiries"]["action"] == "receive"
    assert doc["operations"]["send_sales_ready"]["action"] == "send"


def test_every_ref_in_the_asyncapi_document_resolves() -> None:
    doc = asyncapi_document(TOPICS, "0.1.0")
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    for ref in refs:
        target: object = doc
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(target, dict) and part in target, ref
            target = target[part]


def test_export_writes_a_schema_per_topic_and_the_document(tmp_path: Path) -> None:
    written = export_schemas(TOPICS, tmp_path, "0.1.0")
    names = {path.name for path in written}
    assert "asyncapi.yaml" in names
    assert "leads.sales-ready.schema.json" in names
    assert len(names) == len(Topics.model_fields) + 1
