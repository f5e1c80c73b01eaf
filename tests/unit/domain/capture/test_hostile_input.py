"""Whatever bytes arrive, capture and the warehouse row builder answer with a
lead or a rejection; they never raise."""

import json

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config.settings import DEFAULT_INPUT_MAX_BYTES, SHIPPED_TOPICS
from pipeline.config.topics import load_topics
from pipeline.domain.capture.inquiry import capture_inquiry
from pipeline.reporting.events import event_row
from schemas.lead import InquiryAccepted, TouchScheduled
from schemas.rejected import MessageRejected
from tests.support.factories import AT, EXCLUSIONS, NOW, POLICY, inquiry

TOPICS = load_topics(SHIPPED_TOPICS)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def assert_answered(raw: bytes) -> None:
    result = capture_inquiry(raw, AT, NOW, POLICY, EXCLUSIONS)
    assert isinstance(result, InquiryAccepted | TouchScheduled | MessageRejected)
    if isinstance(result, MessageRejected):
        assert result.payload.reasons
    for spec in TOPICS.all():
        assert event_row(spec, raw, AT)["event_id"]


@settings(max_examples=300, deadline=None)  # a loaded CI machine is slow, not wrong
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_are_answered(raw: bytes) -> None:
    assert_answered(raw)


@settings(max_examples=300, deadline=None)  # a loaded CI machine is slow, not wrong
@given(json_values)
def test_arbitrary_json_is_answered(value: object) -> None:
    assert_answered(json.dumps(value).encode())


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["source", "contact", "answers", "consent", "message", "inquiry_id"]),
        json_values,
    )
)
def test_inquiry_shaped_json_with_wrong_parts_is_answered(body: dict[str, object]) -> None:
    assert_answered(json.dumps(inquiry() | body).encode())


def test_deep_nesting_is_rejected_not_a_crash() -> None:
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    assert isinstance(capture_inquiry(deep, AT, NOW, POLICY, EXCLUSIONS), MessageRejected)


def test_injection_strings_are_data_not_code() -> None:
    sneaky = '\'; DROP TABLE leadflow.lead_events; -- <script>alert(1)</script> =HYPERLINK("x")'
    lead = capture_inquiry(
        orjson.dumps(inquiry(message=sneaky, contact={"email": "a@firma.de", "company": sneaky})),
        AT,
        NOW,
        POLICY,
        EXCLUSIONS,
    )
    assert isinstance(lead, InquiryAccepted)
    assert lead.payload.message == sneaky
    assert lead.payload.contact.company == sneaky


def test_an_oversized_inquiry_is_rejected_with_its_channel() -> None:
    body = inquiry(message="x" * (DEFAULT_INPUT_MAX_BYTES + 1))
    result = capture_inquiry(
        orjson.dumps(body), AT, NOW, POLICY, EXCLUSIONS, DEFAULT_INPUT_MAX_BYTES
    )
    assert isinstance(result, MessageRejected)
    assert [r.code for r in result.payload.reasons] == ["too_large"]
    assert result.source is not None and result.source.channel == "web_form"
    assert result.payload.original_truncated
    assert result.payload.original_size == len(orjson.dumps(body))
    assert len(result.model_dump_json()) < 512 * 1024
