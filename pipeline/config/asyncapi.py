"""JSON Schema per topic and an AsyncAPI 3 document, generated from the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from pipeline.config.topics import Topics

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


def asyncapi_document(topics: Topics, version: str) -> dict[str, Any]:
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
        channels[role] = {
            "address": spec.name,
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
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": top.get("$defs", {})},
    }


def export_schemas(topics: Topics, out_dir: Path, version: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in topics.all():
        path = out_dir / f"{spec.name}.schema.json"
        path.write_text(json.dumps(spec.model.model_json_schema(), indent=2) + "\n")
        written.append(path)
    doc = out_dir / "asyncapi.yaml"
    doc.write_text(yaml.safe_dump(asyncapi_document(topics, version), sort_keys=False))
    written.append(doc)
    return written
