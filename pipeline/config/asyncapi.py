"""JSON Schema per topic and an AsyncAPI 3 document, generated from the models.

The JSON Schemas are draft 2020-12 documents (`$schema`) with an `$id` per topic
and version, and carry every constraint the models enforce (the validators' too:
see `schemas.envelope`), so a message the published schema accepts is not
rejected by the pipeline for its shape. The AsyncAPI document names its servers:
the Kafka broker (plaintext: Leadflow connects without SASL/TLS; run it on a
private network) and the worker's HTTP intake, which publishes to
`leads.inquiries` and needs a channel's key (security scheme `intakeKey`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from pipeline.config.topics import Topics, TopicSpec

INPUT_NOTE = (
    " Leadflow receives this topic (`external` in topics.yaml): a message may have at most "
    "LEADFLOW_INPUT_MAX_BYTES (256 KiB by default), also when the producer compresses it, and "
    "numbers must be finite (no NaN, Infinity or 1e400); anything else is rejected on "
    "leads.rejected with a reason."
)
CONSUMER_NOTES = {
    "sales_ready": " Example consumer: `leadflow crm-bridge --url URL` "
    "(pipeline/adapters/crm_bridge.py) "
    "reads this topic with isolation_level=read_committed in its own consumer group, POSTs "
    "each lead to a CRM webhook with `Idempotency-Key: <event_id>`, retries with backoff and "
    "commits an offset only after delivery.",
    "touches": " Contract with the sender (e-mail / marketing automation / call-task tool): "
    "each TouchScheduled is one instruction, to execute once by its event_id (a repeat after "
    "a restart has the same id: drop it) no earlier than payload.due_at, on payload.channel "
    "to payload.recipient with payload.content_id; purpose fulfillment is the answer to an "
    "inquiry, purpose nurture a program step (payload.program, payload.step), sent only where "
    "the lead consented and within the frequency cap, quiet hours and weekends of "
    "nurture.yaml in the rules directory. The sender reports each result on leads.activity as an "
    "Activity with the lead_id, activity_type email_sent, email_opened, email_clicked, "
    "replied, sms_reply, email_bounced or unsubscribed (details.channel: email, call or sms), "
    "and details.touch_id = the touch's event_id; results feed re-qualification (behaviour "
    "points) and the programs' exits (replied, unsubscribed).",
    "activity": " Results of touches carry details.touch_id (the TouchScheduled event_id); "
    "unsubscribed withdraws details.channel (default email), do_not_contact every channel.",
    "nurture": " Each nurture decision of the gate, and each change of a lead's programs "
    "(entered, left), with the lead's contact permissions.",
}


JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_id(topic: str, version: str) -> str:
    """The `$id` of a topic's JSON Schema: a name, not an address to fetch."""
    return f"urn:leadflow:schema:{topic}:{version}"


def topic_schema(spec: TopicSpec, version: str) -> dict[str, Any]:
    """A topic's value model as a JSON Schema document of its own."""
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_id(spec.name, version),
        **spec.model.model_json_schema(),
    }


def servers(bootstrap: str, intake_url: str) -> dict[str, Any]:
    """Where the channels are: the broker(s) and the worker's HTTP intake."""
    host = intake_url.split("://", 1)[-1]
    return {
        "kafka": {
            "host": bootstrap.split(",")[0].strip(),
            "protocol": "kafka",
            "description": "The Kafka cluster (LEADFLOW_KAFKA_BOOTSTRAP: "
            f"{bootstrap}); plaintext, no SASL/TLS, so on a private network only.",
        },
        "intake": {
            "host": host,
            "protocol": "http",
            "description": "The worker's HTTP intake: POST /v1/inquiries publishes one "
            "inquiry to leads.inquiries after the broker acknowledged it (see openapi.json).",
            "security": [{"$ref": "#/components/securitySchemes/intakeKey"}],
        },
    }


SECURITY_SCHEMES = {
    "intakeKey": {
        "type": "httpApiKey",
        "name": "X-Api-Key",
        "in": "header",
        "description": "A channel's intake key (LEADFLOW_INTAKE_KEYS).",
    },
}


def asyncapi_document(
    topics: Topics,
    version: str,
    bootstrap: str = "127.0.0.1:9092",
    intake_url: str = "http://127.0.0.1:6066",
) -> dict[str, Any]:
    roles = list(Topics.model_fields)
    specs = {role: getattr(topics, role) for role in roles}
    models = {spec.model for spec in specs.values()}
    _, top = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for role, spec in specs.items():
        name = spec.model.__name__
        messages[name] = {
            "name": name,
            "title": name,
            "summary": (spec.model.__doc__ or name).strip().splitlines()[0],
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "bindings": {"kafka": {"key": {"type": "string", "description": spec.key}}},
        }
        reachable = ["kafka", "intake"] if role == "inquiries" else ["kafka"]
        channels[role] = {
            "address": spec.name,
            "servers": [{"$ref": f"#/servers/{name}"} for name in reachable],
            "description": spec.description
            + CONSUMER_NOTES.get(role, "")
            + (INPUT_NOTE if spec.external else ""),
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {"kafka": {"topic": spec.name, "partitions": spec.partitions}},
        }
        action = "receive" if spec.external else "send"
        operations[f"{action}_{role}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{role}"},
            "messages": [{"$ref": f"#/channels/{role}/messages/{name}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Leadflow lead pipeline",
            "version": version,
            "description": "Topics channels publish to, CRMs subscribe to, and the pipeline uses "
            "between its stages. Messages are JSON; lead events are keyed by lead_id.",
        },
        "defaultContentType": "application/json",
        "servers": servers(bootstrap, intake_url),
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": top.get("$defs", {}),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def export_schemas(
    topics: Topics,
    out_dir: Path,
    version: str,
    bootstrap: str = "127.0.0.1:9092",
    intake_url: str = "http://127.0.0.1:6066",
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in topics.all():
        path = out_dir / f"{spec.name}.schema.json"
        path.write_text(json.dumps(topic_schema(spec, version), indent=2) + "\n")
        written.append(path)
    doc = out_dir / "asyncapi.yaml"
    document = asyncapi_document(topics, version, bootstrap, intake_url)
    doc.write_text(yaml.safe_dump(document, sort_keys=False))
    written.append(doc)
    return written
