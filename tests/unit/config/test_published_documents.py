"""The documents a client integrates against (issue 19, point 5), checked with real
parsers from PyPI: the OpenAPI document generated from the worker's routes
(openapi-spec-validator), the JSON Schemas per topic (jsonschema, draft 2020-12)
with `$schema`, `$id` and the models' constraints, and the AsyncAPI document's
servers and security schemes. Every message the pipeline rejects at its edge for
its shape (`decode`: pydantic's validation) is rejected by the published schema too;
hypothesis draws them from the hostile payloads of the input tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from pipeline.bootstrap import build
from pipeline.config.asyncapi import JSON_SCHEMA_DIALECT, asyncapi_document, topic_schema
from pipeline.config.rules import load_rules
from pipeline.config.settings import PROJECT_ROOT, load_settings
from pipeline.config.topics import load_topics
from pipeline.entrypoints.cli import app
from pipeline.worker.openapi import openapi_document
from schemas.inquiry import non_finite_at
from tests.support.payloads import (
    broken,
    hostile_activities,
    hostile_inquiries,
    outcome_fields,
    shaped,
)

SETTINGS = load_settings()
TOPICS = load_topics(SETTINGS.topics_file, SETTINGS.topic_prefix)


def validator(spec_name: str) -> Draft202012Validator:
    spec = getattr(TOPICS, spec_name)
    schema = topic_schema(spec, "0.1.0")
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def agree(model: type[BaseModel], schema: Draft202012Validator, raw: bytes) -> None:
    """Rejected by the pipeline for its shape ⇒ rejected by the published schema."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return  # not JSON (or nested past any parser): no question of a schema
    if non_finite_at(data) is not None:
        return  # NaN/Infinity are no JSON: a JSON Schema cannot speak of them
    try:
        model.model_validate_json(raw)
    except ValidationError as exc:
        assert not schema.is_valid(data), (raw[:300], exc.errors()[:2])


def test_every_topic_schema_is_a_2020_12_document_with_its_own_id() -> None:
    ids = set()
    for spec in TOPICS.all():
        schema = topic_schema(spec, "0.1.0")
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == JSON_SCHEMA_DIALECT
        ids.add(schema["$id"])
    assert len(ids) == len(TOPICS.all())


REJECTED_INQUIRIES = [
    {"source": {"channel": "Web Form!"}, "contact": {}},  # the example
    {"source": {"channel": "  "}, "contact": {}},
    {"source": {"channel": "x" * 41}, "contact": {}},
    {"source": {"channel": "web_form", "campaign": "   "}, "contact": {}},  # blank
    {"source": {"channel": "web_form"}, "contact": {"email": ""}},
    {"source": {"channel": "web_form"}, "contact": {"country": "DEU"}},
    {"source": {"channel": "web_form"}, "contact": {}, "received_at": "2026-11-22T10:00:00"},
    {"source": {"channel": "web_form"}, "contact": {}, "received_at": 1764000000},
    {"source": {"channel": "web_form"}, "contact": {}, "answers": {"employees": -1}},
    {"source": {"channel": "web_form"}, "contact": {}, "answers": {"employees": "12"}},
    {"source": {"channel": "web_form"}, "contact": {}, "product_interest": ["x"] * 21},
    {"source": {"channel": "web_form"}, "contact": {}, "inquiry_id": ""},
    {"contact": {}},
]
ACCEPTED_INQUIRIES = [
    {"source": {"channel": " Web_Form "}, "contact": {"email": "lena.voss@firma.de"}},
    {"source": {"channel": "web_form"}, "contact": {}, "received_at": "2026-11-22T10:00:00+01:00"},
    {"source": {"channel": "trade_fair"}, "contact": {"country": "de"}, "shoe_size": 44},
]


@pytest.mark.parametrize("body", REJECTED_INQUIRIES)
def test_an_inquiry_the_pipeline_rejects_for_its_shape_the_schema_rejects(body: Any) -> None:
    schema, raw = validator("inquiries"), json.dumps(body).encode()
    with pytest.raises(ValidationError):
        TOPICS.inquiries.model.model_validate_json(raw)
    assert not schema.is_valid(body)


@pytest.mark.parametrize("body", ACCEPTED_INQUIRIES)
def test_an_inquiry_the_pipeline_takes_the_schema_takes(body: Any) -> None:
    TOPICS.inquiries.model.model_validate_json(json.dumps(body))
    assert validator("inquiries").is_valid(body), list(validator("inquiries").iter_errors(body))


HYPOTHESIS = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))


@HYPOTHESIS
@given(raw=hostile_inquiries)
def test_hostile_inquiries_the_pipeline_rejects_the_schema_rejects(raw: bytes) -> None:
    agree(TOPICS.inquiries.model, validator("inquiries"), raw)


@HYPOTHESIS
@given(raw=hostile_activities)
def test_hostile_activities_the_pipeline_rejects_the_schema_rejects(raw: bytes) -> None:
    agree(TOPICS.activity.model, validator("activity"), raw)


@HYPOTHESIS
@given(raw=broken(shaped(outcome_fields())) | st.just(b'{"outcome": "won"}'))
def test_hostile_crm_outcomes_the_pipeline_rejects_the_schema_rejects(raw: bytes) -> None:
    agree(TOPICS.feedback.model, validator("feedback"), raw)


def test_the_openapi_document_of_the_workers_routes_is_valid(tmp_path: Path) -> None:
    local = load_settings(state_dir=tmp_path)
    stage = build(local, TOPICS, load_rules(local.rules_dir))
    document = openapi_document(stage.pages, "0.1.0", local.web_url)
    validate(document)  # raises on any error, with the path to it
    served = {(path, m) for path, item in document["paths"].items() for m in item}
    stage.app.web.init_server()  # the web application `leadflow worker` serves
    routes = {
        (route.resource.canonical, route.method.lower())  # type: ignore[union-attr]
        for route in stage.app.web.web_app.router.routes()  # type: ignore[attr-defined]
        if route.method not in {"HEAD", "OPTIONS"}
    }
    assert served == routes - {("/", "get")}  # all but Faust's own index
    assert ("/openapi.json", "get") in served and ("/metrics", "get") in served
    inquiries = document["paths"]["/v1/inquiries"]["post"]
    assert inquiries["security"] == [{"intakeKey": []}, {"basicPassword": []}]
    assert set(inquiries["responses"]) >= {"202", "401", "413", "422", "429", "503"}
    body = inquiries["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Inquiry"}
    assert document["paths"]["/v1/health"]["get"]["security"] == []
    qualification = document["paths"]["/v1/leads/{lead_id}/qualification"]["get"]
    assert qualification["parameters"][0]["name"] == "lead_id"
    assert "recovering" in qualification["responses"]["503"]["description"]


def test_the_asyncapi_document_names_its_servers_and_security_schemes() -> None:
    doc = asyncapi_document(TOPICS, "0.1.0", "broker-1:9092,broker-2:9092", "http://10.0.0.5:6066")
    assert doc["servers"]["kafka"] == {
        "host": "broker-1:9092",
        "protocol": "kafka",
        "description": doc["servers"]["kafka"]["description"],
    }
    assert doc["servers"]["intake"]["host"] == "10.0.0.5:6066"
    assert doc["servers"]["intake"]["security"] == [
        {"$ref": "#/components/securitySchemes/intakeKey"}
    ]
    assert doc["components"]["securitySchemes"]["intakeKey"]["type"] == "httpApiKey"
    inquiries = doc["channels"]["inquiries"]["servers"]
    assert {"$ref": "#/servers/intake"} in inquiries and {"$ref": "#/servers/kafka"} in inquiries


def test_schemas_export_writes_the_openapi_document_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.entrypoints.test_cli import logging_restored

    monkeypatch.setenv("LEADFLOW_STATE_DIR", str(tmp_path / "state"))
    with logging_restored():
        done = CliRunner().invoke(app, ["schemas", "export", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    validate(json.loads((tmp_path / "out" / "openapi.json").read_text()))
    exported = json.loads((tmp_path / "out" / "leads.inquiries.schema.json").read_text())
    assert exported["$schema"] == JSON_SCHEMA_DIALECT and exported["$id"].startswith("urn:")
    assert "pattern" in exported["$defs"]["Source"]["properties"]["channel"]


PARSER_DIR = PROJECT_ROOT / "build" / "asyncapi-parser" / "node_modules"


def asyncapi_parser() -> str:
    node = shutil.which("node")
    if node is None or not (PARSER_DIR / "@asyncapi" / "parser").is_dir():
        pytest.skip(
            "no node or no @asyncapi/parser here (scripts/ensure-asyncapi-parser.sh, run by "
            "`make test`, installs it; it printed why it could not)"
        )
    return node


def parse_asyncapi(node: str, document: dict[str, Any], at: Path) -> subprocess.CompletedProcess:
    path = at / "asyncapi.json"
    path.write_text(json.dumps(document))
    return subprocess.run(
        [node, str(PROJECT_ROOT / "scripts" / "check-asyncapi.mjs"), str(path)],
        env={**os.environ, "ASYNCAPI_PARSER_DIR": str(PARSER_DIR)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_asyncapi_parser_takes_the_document_and_refuses_a_broken_one(tmp_path: Path) -> None:
    node = asyncapi_parser()
    document = asyncapi_document(TOPICS, "0.1.0", SETTINGS.kafka_bootstrap, SETTINGS.web_url)
    parsed = parse_asyncapi(node, document, tmp_path)
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr
    assert "error" not in parsed.stdout
    del document["servers"]["kafka"]["protocol"]  # the parser does check what we send
    refused = parse_asyncapi(node, document, tmp_path)
    assert refused.returncode == 1 and 'required property "protocol"' in refused.stdout
