"""The one client of the worker's HTTP API against a real HTTP server: the operator
key goes with every request, 503 with Retry-After is `WorkerRecovering` for a GET
and a POST alike, a refusal reads as what to do, and no worker is `None` for the
read side, an `OSError` otherwise."""

from __future__ import annotations

import json
import threading
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.adapters.worker_api import ask_worker, get_json, post_json
from pipeline.config.settings import Settings, load_settings
from pipeline.errors import LeadflowError, WorkerRecovering
from tests.support.settings import free_port


class FakeWorkerDoor(BaseHTTPRequestHandler):
    """Answers like the worker's door: 401 without the key, 503 while recovering,
    400 with the worker's own error, else what it was sent."""

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("X-Api-Key") != "the-operator-key":
            self._send(401, {"error": "missing or invalid X-Api-Key"})
        elif self.path.startswith("/recovering"):
            self._send(503, {"status": "recovering"}, {"Retry-After": "7"})
        elif self.path.startswith("/busy"):
            self._send(503, {"error": "busy"})  # no Retry-After: not "recovering"
        elif self.path.startswith("/bad"):
            self._send(400, {"error": "unknown report 'funel'"})
        else:
            seen = {
                "method": self.command,
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "body": body.decode(),
            }
            self._send(200, seen)

    do_GET = do_POST = _answer

    def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture()
def door(tmp_path: Path) -> Iterator[Settings]:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), FakeWorkerDoor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield load_settings(
            web_port=port, state_dir=tmp_path, operator_keys={"ops": "the-operator-key"}
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_every_call_presents_the_operator_key_and_its_body(door: Settings) -> None:
    assert get_json(door, "/v1/queues")["method"] == "GET"
    posted = post_json(door, "/v1/privacy/person", {"subject": "anna@firma.de"})
    assert posted["method"] == "POST"
    assert posted["content_type"] == "application/json"
    assert json.loads(posted["body"]) == {"subject": "anna@firma.de"}
    asked = json.loads(ask_worker(door, "/v1/sql", body=b"SELECT 1") or b"")
    assert asked["body"] == "SELECT 1"
    assert asked["content_type"] == "text/plain; charset=utf-8"
    query = json.loads(ask_worker(door, "/v1/reports/funnel", {"days": "7"}) or b"")
    assert query["path"] == "/v1/reports/funnel?days=7"


def test_503_with_retry_after_is_worker_recovering_for_get_post_and_ask(door: Settings) -> None:
    with pytest.raises(WorkerRecovering) as got:
        get_json(door, "/recovering")
    assert got.value.retry_after == 7
    with pytest.raises(WorkerRecovering):
        post_json(door, "/recovering", {"subject": "x"})
    with pytest.raises(WorkerRecovering):
        ask_worker(door, "/recovering")
    with pytest.raises(urllib.error.HTTPError) as plain:  # 503 without Retry-After
        get_json(door, "/busy")
    assert plain.value.code == 503


def test_a_refusal_says_what_to_do(door: Settings, tmp_path: Path) -> None:
    with pytest.raises(LeadflowError, match=r"answered 400: unknown report 'funel'"):
        ask_worker(door, "/bad")
    keyless = load_settings(
        web_port=door.web_port, state_dir=tmp_path, operator_keys={"ops": "wrong-key"}
    )
    with pytest.raises(LeadflowError, match="wants an operator key: set the same"):
        ask_worker(keyless, "/v1/reports/funnel")
    with pytest.raises(urllib.error.HTTPError) as refused:  # the caller judges it
        get_json(keyless, "/v1/queues")
    assert refused.value.code == 401


def test_no_worker_is_none_for_the_read_side_and_an_oserror_otherwise(tmp_path: Path) -> None:
    nobody = load_settings(web_port=free_port(), state_dir=tmp_path)
    assert ask_worker(nobody, "/v1/warehouse/lag") is None
    with pytest.raises(OSError):
        get_json(nobody, "/v1/health")
