"""The OpenAPI 3.1 document of the worker's HTTP API, generated from its routes.

Every endpoint is registered through `Stage.page`, which notes it (`Page`: path,
view, whose keys open it, whether it reads worker tables), so the document lists
exactly what the worker serves: methods from the view, path parameters from the
path, the summary from the view's docstring, the security scheme from the keys,
the answers every endpoint shares from the door (`pipeline.worker.http.guard`).
Bodies with a model of their own (an inquiry) carry its JSON Schema. Served at
`GET /openapi.json`; `leadflow schemas export` writes it as `openapi.json`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faust.web import View
from pydantic.json_schema import models_json_schema

from pipeline.worker.http import Keys
from schemas.inquiry import Inquiry

if TYPE_CHECKING:
    from pipeline.worker.stage import Stage

METHODS = ("get", "post", "put", "patch", "delete")
SCHEMES = {
    "operator_keys": "operatorKey",
    "intake_keys": "intakeKey",
    "claim_keys": "claimKey",
}
"""Security scheme by the function that names an endpoint's keys."""
KEY_OF = {
    "operatorKey": "an operator's key (LEADFLOW_OPERATOR_KEYS, else STATE_DIR/operator.key)",
    "intakeKey": "a channel's intake key (LEADFLOW_INTAKE_KEYS)",
    "claimKey": "a rep's claim key (LEADFLOW_CLAIM_KEYS)",
}
TEXT_BODY = {"/v1/sql": "One read-only SQL query."}
SUBJECT = {
    "type": "object",
    "required": ["subject"],
    "properties": {"subject": {"type": "string", "description": "Lead id, e-mail or phone."}},
}
JSON_BODIES: dict[str, dict[str, Any]] = {
    "/v1/inquiries": {"$ref": "#/components/schemas/Inquiry"},
    "/v1/privacy/person": SUBJECT,
    "/v1/privacy/export": SUBJECT,
}
"""Request bodies of the POST endpoints (the rest take none)."""
FORM = "/v1/forms/{form_key}"
FORM_FIELDS = {
    "type": "object",
    "description": "The inquiry's flat fields: email, phone, first_name, last_name, company, "
    "job_title, postal_code, city, country, language, message, inquiry_id, campaign, utm_*, "
    "product_interest (repeated), consent_marketing_email, consent_phone_contact; the "
    "honeypot field (LEADFLOW_FORM_HONEYPOT) stays empty.",
    "additionalProperties": {"type": "string"},
}
ACCEPTED = {"/v1/inquiries", "/v1/queues/{queue}/claim", FORM}
"""Endpoints that answer 202: accepted into Kafka, processed later."""
JSON_ANSWER: dict[str, Any] = {"application/json": {"schema": {}}}


@dataclass(frozen=True)
class Page:
    """One endpoint as `Stage.page` registered it."""

    path: str
    view: type[View]
    keys: Keys | None
    needs_tables: bool

    @property
    def methods(self) -> list[str]:
        return [m for m in METHODS if m in vars(self.view)]


def _answer(description: str) -> dict[str, Any]:
    return {"description": description, "content": JSON_ANSWER}


def operation(page: Page, method: str) -> dict[str, Any]:
    """One method of one endpoint."""
    doc = (page.view.__doc__ or "").strip()
    scheme = SCHEMES.get(page.keys.__name__) if page.keys is not None else None
    ok = "202" if page.path in ACCEPTED else "200"
    responses: dict[str, Any] = {
        ok: _answer("Accepted." if ok == "202" else "The answer."),
        "413": _answer("The declared body is over LEADFLOW_INTAKE_MAX_BODY_BYTES."),
        "500": _answer('A fault of ours: {"error": "internal error"}, no details.'),
        "503": _answer(
            "Not now: the warehouse is unavailable"
            + (", or the worker's tables are recovering (Retry-After)" if page.needs_tables else "")
            + "."
        ),
    }
    op: dict[str, Any] = {
        "operationId": f"{method}{page.view.__name__}",
        "summary": doc.splitlines()[0] if doc else page.view.__name__,
        "responses": responses,
    }
    if doc:
        op["description"] = doc
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{([^}]+)\}", page.path)
    ]
    if parameters:
        op["parameters"] = parameters
    if scheme is None:
        op["security"] = []
    else:
        op["security"] = [{scheme: []}, {"basicPassword": []}]
        responses["401"] = _answer(f"Missing or invalid key: send {KEY_OF[scheme]}.")
        responses["429"] = _answer("Over the key's rate limit; Retry-After says when to retry.")
    if method == "post":
        if page.path in TEXT_BODY:
            body = {
                "text/plain": {"schema": {"type": "string", "description": TEXT_BODY[page.path]}}
            }
            op["requestBody"] = {"required": True, "content": body}
            responses["400"] = _answer("The query is not one read-only query, or it was refused.")
        elif page.path in JSON_BODIES:
            body = {"application/json": {"schema": JSON_BODIES[page.path]}}
            op["requestBody"] = {"required": True, "content": body}
        if page.path == FORM:
            forms = {"schema": FORM_FIELDS}
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": forms,
                    "multipart/form-data": forms,
                    "application/json": {"schema": {"$ref": "#/components/schemas/Inquiry"}},
                },
            }
            responses["303"] = {"description": "Accepted: to the channel's thank-you page."}
            responses["403"] = _answer("Posted from an origin the form does not take.")
            responses["404"] = _answer("No form has this key.")
            responses["429"] = _answer("Over the form's rate limit for this address.")
        if page.path in {"/v1/inquiries", FORM}:
            responses["422"] = _answer(
                "Not an inquiry: the errors by field (kept on leads.rejected)."
            )
    return op


def openapi_document(pages: list[Page], version: str, url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these endpoints, served at `url`."""
    paths: dict[str, Any] = {}
    for page in sorted(pages, key=lambda p: p.path):
        paths[page.path] = {m: operation(page, m) for m in page.methods}
    _, top = models_json_schema(
        [(Inquiry, "validation")], ref_template="#/components/schemas/{model}"
    )
    schemes: dict[str, Any] = {
        name: {"type": "apiKey", "in": "header", "name": "X-Api-Key", "description": KEY_OF[name]}
        for name in KEY_OF
    }
    schemes["basicPassword"] = {
        "type": "http",
        "scheme": "basic",
        "description": "Any user name, the key as the password (what a browser asks for, "
        "e.g. for the dashboard).",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Leadflow worker",
            "version": version,
            "description": "The worker's HTTP API: the intake for web forms and webhooks, pull "
            "claims, health and readiness, metrics, reports, analyst SQL and privacy requests. "
            "Every endpoint but health, readiness, metrics and this document needs a key.",
        },
        "servers": [{"url": url}],
        "paths": paths,
        "components": {"schemas": top.get("$defs", {}), "securitySchemes": schemes},
    }


def serve_openapi(stage: Stage) -> None:
    """`GET /openapi.json`: the document of every endpoint registered (public)."""
    from importlib.metadata import version

    from faust.web import Request, Response

    @stage.page("/openapi.json", keys=None)
    class OpenApi(View):
        """This document."""

        async def get(self, request: Request) -> Response:
            url = stage.settings.web_url
            return self.json(openapi_document(stage.pages, version("leadflow"), url))
