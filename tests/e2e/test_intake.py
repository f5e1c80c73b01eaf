"""`POST /v1/inquiries` on the running worker against the real broker: status
codes, the broker's ack before 202, rejected bodies kept, idempotent retries."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import orjson
import pytest
from pydantic import SecretStr

from pipeline.config.settings import Settings
from pipeline.config.topics import Topics, load_topics
from pipeline.dev.harness import WorkerProcess
from schemas.inquiry import Inquiry
from schemas.lead import LeadCaptured
from schemas.rejected import MessageRejected
from tests.support.broker import read_topic
from tests.support.settings import isolated_settings

KEY = "test-key-web-form-0815"


@dataclass
class Intake:
    settings: Settings
    topics: Topics

    def post(
        self, body: bytes, key: str | None = KEY, content_type: str = "application/json", **h: str
    ) -> tuple[int, dict]:
        headers = {"Content-Type": content_type, **h}
        if key is not None:
            headers["X-Api-Key"] = key
        request = urllib.request.Request(
            self.settings.web_url + "/v1/inquiries", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, orjson.loads(error.read())

    def read(self, spec_name: str) -> list[bytes]:
        spec = getattr(self.topics, spec_name)
        found = asyncio.run(read_topic(self.settings.kafka_bootstrap, spec))
        return [raw or b"" for _, raw in found]


@pytest.fixture(scope="module")
def intake(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Intake]:
    state = tmp_path_factory.mktemp("intake")
    settings = isolated_settings(kafka, state).model_copy(
        update={"intake_keys": {"web_form": SecretStr(KEY)}, "intake_max_body_bytes": 2048}
    )
    with WorkerProcess(settings, state / "worker.log"):
        yield Intake(settings, load_topics(settings.topics_file, settings.topic_prefix))


def inquiry(**fields: object) -> bytes:
    return orjson.dumps({"contact": {"email": "lena.voss@firma.de"}, **fields})


def test_without_a_valid_key_401(intake: Intake) -> None:
    assert intake.post(inquiry(), key=None)[0] == 401
    assert intake.post(inquiry(), key="guess")[0] == 401


def test_over_the_body_limit_413(intake: Intake) -> None:
    assert intake.post(inquiry(message="x" * 3000))[0] == 413


def test_202_means_the_inquiry_is_already_in_kafka(intake: Intake) -> None:
    status, answer = intake.post(inquiry(), **{"Idempotency-Key": "ack-1"})
    assert (status, answer) == (202, {"inquiry_id": "ack-1"})
    stored = [Inquiry.model_validate_json(raw) for raw in intake.read("inquiries")]
    assert any(i.inquiry_id == "ack-1" and i.source.channel == "web_form" for i in stored)


def test_a_form_post_is_accepted(intake: Intake) -> None:
    form = urlencode({"email": "tom@firma.de", "campaign": "spring", "inquiry_id": "f-1"})
    status, answer = intake.post(form.encode(), content_type="application/x-www-form-urlencoded")
    assert (status, answer) == (202, {"inquiry_id": "f-1"})


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            b'{"inquiry_id": "bad-1", "contact": {"email": "a@firma.de"}, '
            b'"answers": {"employees": "viele"}}',
            ("invalid_int_type", "answers.employees"),
        ),
        # an address that is none: told at once, not rejected later unseen
        (
            b'{"inquiry_id": "nope-1", "contact": {"email": "nope", "last_name": "Roth"}}',
            ("email_invalid", "contact.email"),
        ),
    ],
)
def test_422_with_field_errors_and_the_raw_body_in_rejected(
    intake: Intake, body: bytes, error: tuple[str, str]
) -> None:
    status, answer = intake.post(body)
    assert status == 422
    assert [(e["code"], e["field"]) for e in answer["errors"]] == [error]
    rejections = [MessageRejected.model_validate_json(r).payload for r in intake.read("rejected")]
    mine = [r for r in rejections if base64.b64decode(r.original_b64) == body]
    assert len(mine) == 1 and mine[0].stage == "intake"
    assert [r.code for r in mine[0].reasons] == [error[0]]
    stored = [Inquiry.model_validate_json(raw) for raw in intake.read("inquiries")]
    assert not any(i.inquiry_id == orjson.loads(body)["inquiry_id"] for i in stored)


def test_a_multipart_form_post_is_accepted(intake: Intake) -> None:
    boundary = "----formBoundary42"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="email"\r\n\r\n'
        f"mia@firma.de\r\n--{boundary}\r\nContent-Disposition: form-data; "
        f'name="inquiry_id"\r\n\r\nmp-7\r\n--{boundary}--\r\n'
    ).encode()
    content_type = f"multipart/form-data; boundary={boundary}"
    assert intake.post(body, content_type=content_type) == (202, {"inquiry_id": "mp-7"})


def test_retries_with_the_same_idempotency_key_make_one_lead(intake: Intake) -> None:
    body = inquiry(source={"channel": "web_form", "campaign": "retry"})
    for _ in range(3):
        assert intake.post(body, **{"Idempotency-Key": "retry-7"})[0] == 202
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        captured = [LeadCaptured.model_validate_json(r) for r in intake.read("captured")]
        mine = [c for c in captured if c.payload.inquiry_id == "retry-7"]
        if len(mine) == 3:
            break
        time.sleep(0.5)
    assert len(mine) == 3  # every delivery is processed ...
    assert len({(c.event_id, c.lead_id) for c in mine}) == 1  # ... as the same lead event


def listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP socket listens on at `port` (Linux /proc/net/tcp*)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # the kernel writes each 32-bit word in host (little-endian) order
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, width // 2, 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def test_the_web_server_listens_only_on_the_configured_host(intake: Intake) -> None:
    """LEADFLOW_WEB_HOST defaults to 127.0.0.1: intake, SQL and privacy export must
    not be reachable from every interface (Faust binds 0.0.0.0 unless told)."""
    assert intake.settings.web_host == "127.0.0.1"
    assert listening_addresses(intake.settings.web_port) == {"127.0.0.1"}
