"""Hypothesis strategies for hostile and broken messages: wrong types, missing
fields, huge strings, deep nesting, invalid UTF-8, control characters,
SQL/HTML/CSV-formula injection and duplicate JSON keys – shaped like the inputs
channels, trackers and CRMs send, so they reach past the first check."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

PERSON = "hostile.person@firma.de"
"""The personal data every payload carries: no answer to a caller may echo it."""

INJECTIONS = [
    "'); DROP TABLE leadflow.lead_events; --",
    '" OR 1=1 --',
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
    '=HYPERLINK("http://evil.example","click")',
    "=cmd|' /C calc'!A0",
    "+SUM(1+1)*cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3+cmd|' /C calc'!A0",
    "{{7*7}} ${7*7} %s %n",
    "../../etc/passwd\x00",
]

control_text = st.text(
    st.characters(categories=["Cc", "Cs", "Zl", "Zp", "Cf"], exclude_characters="\x00")
    | st.characters(codec="utf-8"),
    max_size=50,
)
huge_text = st.integers(min_value=1_000, max_value=300_000).map(lambda n: "x" * n)
hostile_text = st.sampled_from(INJECTIONS) | control_text | huge_text
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what JSON tools accept
    | st.floats(allow_nan=False)
    | hostile_text
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def shaped(draw: st.DrawFn, fields: dict[str, Any]) -> bytes:
    """A body with the model's field names: some dropped, some given wrong values."""
    body = {k: v for k, v in fields.items() if draw(st.booleans())}
    for key in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3)):
        body[key] = draw(json_values)
    return orjson.dumps(body)


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def duplicate_keys(body: bytes) -> bytes:
    """The same object with its first key given twice (the second value is hostile)."""
    if not body.startswith(b"{") or body == b"{}":
        return body
    key = body[1:].split(b":", 1)[0]
    return b"{" + key + b':"=1+1",' + body[1:]


def broken(valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Payloads derived from `valid` ones, plus raw garbage."""
    return st.one_of(
        valid,
        valid.map(duplicate_keys),
        valid.map(lambda b: b[: len(b) // 2]),  # cut off mid-message
        valid.map(lambda b: b.replace(b'"', b"\xff", 1)),  # invalid UTF-8
        st.integers(min_value=100, max_value=5_000).map(nested),
        st.binary(max_size=200),
        json_values.map(orjson.dumps),
    )


def inquiry_fields() -> dict[str, Any]:
    return {
        "inquiry_id": "hostile-1",
        "source": {"channel": "web_form", "campaign": "spring"},
        "contact": {"email": PERSON, "first_name": "Hos", "company": "Tile GmbH"},
        "message": "hello",
        "product_interest": ["crm-suite"],
        "answers": {},
        "consent": {"marketing_email": True},
    }


def activity_fields() -> dict[str, Any]:
    return {
        "activity_id": "a-1",
        "occurred_at": "2026-11-22T10:00:00+00:00",
        "activity_type": "page_view",
        "email": PERSON,
        "details": {"url": "/pricing"},
    }


def outcome_fields() -> dict[str, Any]:
    return {
        "outcome_id": "o-1",
        "lead_id": "6f1c3a4e-0000-4000-8000-000000000000",
        "occurred_at": "2026-11-22T10:00:00+00:00",
        "outcome": "won",
        "amount_eur": 1000,
    }


hostile_inquiries = broken(shaped(inquiry_fields()))
hostile_activities = broken(shaped(activity_fields()))
hostile_outcomes = broken(shaped(outcome_fields()))
