"""Every HTTP route the worker serves, walked on the real aiohttp application the
worker builds: each one but health and readiness refuses a request without a
valid key, the door they share rate-limits per key and never answers with a
trace, and views of worker tables say "recovering" until the tables are read.

No broker is needed: the door answers before any Kafka or warehouse work.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
import orjson
from aiohttp.test_utils import TestClient, TestServer
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from faust.assignor.client_assignment import ClientAssignment, ClientMetadata
from faust.web import Request, Response, View
from pydantic import SecretStr

from agents.report import serve_reports
from pipeline.bootstrap import create_app
from pipeline.config.access import read_local_key
from pipeline.config.reference import reference_data
from pipeline.config.rules import load_rules
from pipeline.config.settings import Settings, load_settings
from pipeline.config.topics import load_topics
from pipeline.worker.http import caller
from pipeline.worker.sink import WarehouseSink
from pipeline.worker.stage import Stage
from tests.support.processes import leadflow
from tests.support.settings import free_port

# ours, and Faust's index ({"status": "OK"}): "up"
PUBLIC = {"/v1/health", "/v1/ready", "/metrics", "/openapi.json", "/"}
FORM_DOOR = "/v1/forms/{form_key}"
"""The browsers' door: the public form key in the path is what opens it."""
TABLE_VIEWS = ("/v1/queues", "/v1/leads/x/qualification", "/v1/leads/x/nurture")
SECRET_MARK = "anna.schmidt@firma.de"


def worker_settings(tmp_path: Path, **changes: Any) -> Settings:
    return load_settings(
        state_dir=tmp_path,
        topic_prefix="http-access.",
        intake_keys={"web_form": SecretStr("k-form")},
        claim_keys={"anna.schmidt": SecretStr("k-anna")},
        **changes,
    )


def worker_app(settings: Settings, recovered: bool = True) -> faust.App:
    """The worker's app, not started; `recovered`: it has a partition and its tables
    count as read, as Faust marks them after a rebalance once the changelogs are read
    (there is nothing to read here)."""
    app = create_app(
        settings,
        load_topics(settings.topics_file, settings.topic_prefix),
        load_rules(settings.rules_dir),
    )
    app.web.init_server()  # Faust's own blueprints as well, as `leadflow worker` serves them
    if recovered:
        assign(app, settings.topic_prefix + "leads.inquiries")
        app.tables.on_actives_ready()
    return app


def assign(app: faust.App, topic: str) -> None:
    """What a rebalance hands Faust's assignor: partition 0 of `topic`, active here."""
    meta = ClientMetadata(
        assignment=ClientAssignment(actives={topic: [0]}, standbys={}),
        url=str(app.conf.canonical_url),
        changelog_distribution={},
    )
    protocol = ConsumerProtocolMemberAssignment(0, [(topic, [0])], zlib.compress(meta.dumps()))
    app.assignor.on_assignment(protocol)


def serve(
    app: faust.App, scenario: Callable[[TestClient], Awaitable[None]], port: int | None = None
) -> None:
    """Run `scenario` against the worker's real web application on `port` (a free one)."""

    async def run() -> None:
        server = TestServer(app.web.web_app, port=port)  # type: ignore[attr-defined]
        async with TestClient(server) as http:
            await scenario(http)

    asyncio.run(run())


def routes(app: faust.App) -> list[tuple[str, str]]:
    found = []
    for route in app.web.web_app.router.routes():  # type: ignore[attr-defined]
        path = route.resource.canonical if route.resource is not None else ""
        if route.method not in {"HEAD", "OPTIONS"}:
            found.append((route.method, path))
    return sorted(set(found))


def test_the_worker_serves_exactly_these_routes(tmp_path: Path) -> None:
    """The list the README documents; a new endpoint shows up here and in the walk."""
    assert routes(worker_app(worker_settings(tmp_path))) == [
        ("GET", "/"),
        ("GET", "/dashboard"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/v1/experiments"),
        ("GET", "/v1/experiments/{name}"),
        ("GET", "/v1/health"),
        ("GET", "/v1/leads/{lead_id}/captures"),
        ("GET", "/v1/leads/{lead_id}/nurture"),
        ("GET", "/v1/leads/{lead_id}/qualification"),
        ("GET", "/v1/leads/{lead_id}/timeline"),
        ("GET", "/v1/queues"),
        ("GET", "/v1/ready"),
        ("GET", "/v1/reports"),
        ("GET", "/v1/reports/{name}"),
        ("GET", "/v1/timers/{name}"),
        ("GET", "/v1/warehouse/events"),
        ("GET", "/v1/warehouse/lag"),
        ("POST", "/v1/forms/{form_key}"),
        ("POST", "/v1/inquiries"),
        ("POST", "/v1/privacy/export"),
        ("POST", "/v1/privacy/person"),
        ("POST", "/v1/queues/{queue}/claim"),
        ("POST", "/v1/sql"),
    ]


def test_every_route_but_health_and_ready_refuses_a_request_without_a_valid_key(
    tmp_path: Path,
) -> None:
    app = worker_app(worker_settings(tmp_path))
    walked = routes(app)
    serve(app, lambda http: walk(http, walked))


async def walk(http: TestClient, walked: list[tuple[str, str]]) -> None:
    assert len(walked) >= 9
    for method, pattern in walked:
        path = re.sub(r"\{[^}]+\}", "x", pattern)
        if pattern in PUBLIC:
            response = await http.request(method, path)
            assert response.status == 200, (method, pattern)
            continue
        if pattern == FORM_DOOR:  # a made-up form key opens nothing, nor does an operator's
            for headers in ({}, {"X-Api-Key": "k-ops"}, {"X-Api-Key": "k-form"}):
                response = await http.request(method, path, headers=headers, data=b"{}")
                assert response.status == 404, (method, pattern, headers)
            continue
        for headers in ({}, {"X-Api-Key": "guess"}, {"X-Api-Key": ""}):
            response = await http.request(method, path, headers=headers, data=b"{}")
            assert response.status == 401, (method, pattern, headers)
            assert await response.json() == {"error": "missing or invalid X-Api-Key"}


def test_keys_open_only_their_own_endpoints(tmp_path: Path) -> None:
    settings = worker_settings(tmp_path)
    app = worker_app(settings)
    operator = read_local_key(settings)
    assert operator  # made by the worker at start: the CLI on this machine reads it
    serve(app, lambda http: only_their_own(http, operator))


async def only_their_own(http: TestClient, operator: str) -> None:
    assert (await http.get("/v1/queues", headers={"X-Api-Key": operator})).status == 200
    for key in ("k-form", "k-anna"):
        assert (await http.get("/v1/queues", headers={"X-Api-Key": key})).status == 401
    claim = await http.post("/v1/queues/x/claim", headers={"X-Api-Key": operator})
    assert claim.status == 401
    assert (await http.post("/v1/inquiries", headers={"X-Api-Key": "k-anna"})).status == 401


def test_each_key_has_its_own_rate_limit_with_retry_after(tmp_path: Path) -> None:
    settings = worker_settings(
        tmp_path,
        operator_keys={"revops": SecretStr("k-ops"), "bi": SecretStr("k-bi")},
        http_requests_per_minute=6,
        http_burst=3,
    )
    serve(worker_app(settings), limited)


async def limited(http: TestClient) -> None:
    ops = {"X-Api-Key": "k-ops"}
    statuses = [(await http.get("/v1/queues", headers=ops)).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = await http.get("/v1/queues", headers=ops)
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "retry after" in (await refused.json())["error"]
    # Another key is not held back by the noisy one; health never is.
    assert (await http.get("/v1/queues", headers={"X-Api-Key": "k-bi"})).status == 200
    assert (await http.get("/v1/health")).status == 200
    # Guessing keys spends the budget of the caller's address.
    guesses = [
        (await http.get("/v1/queues", headers={"X-Api-Key": f"g{n}"})).status for n in range(4)
    ]
    assert guesses == [401, 401, 401, 429]


def test_an_error_is_a_bare_500_without_trace_or_personal_data(tmp_path: Path) -> None:
    """A view that fails (here: one that raises with personal data in the message)."""
    settings = worker_settings(tmp_path, operator_keys={"revops": SecretStr("k-ops")})
    app = faust.App("http-access-test", autodiscover=False)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    rules = load_rules(settings.rules_dir)
    stage = Stage(app, settings, topics, rules, reference_data(None))

    @stage.page("/v1/boom")
    class Boom(View):
        async def get(self, request: Request) -> Response:
            raise RuntimeError(f"cannot handle {SECRET_MARK} for {caller(request)}")

    async def call(http: TestClient) -> None:
        response = await http.get("/v1/boom", headers={"X-Api-Key": "k-ops"})
        text = await response.text()
        assert response.status == 500
        assert text == '{"error":"internal error"}'
        assert SECRET_MARK not in text and "Traceback" not in text

    serve(app, call)


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    serve(worker_app(worker_settings(tmp_path)), ten_megabytes)


async def ten_megabytes(http: TestClient) -> None:
    ten_mb = b"x" * (10 * 1024 * 1024)
    response = await http.post("/v1/inquiries", data=ten_mb, headers={"X-Api-Key": "k-form"})
    assert response.status == 413
    assert "body over" in (await response.json())["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read, then refused
        for _ in range(8):  # 2 MiB
            yield b"x" * 256 * 1024

    chunked = await http.post("/v1/inquiries", data=chunks(), headers={"X-Api-Key": "k-form"})
    assert chunked.status == 413


def test_views_of_worker_tables_say_recovering_until_the_tables_are_read(tmp_path: Path) -> None:
    """Right after a start (and during a rebalance) Faust has not read the tables back
    from their changelogs: their views answer 503 "recovering", never empty figures;
    health stays 200 and says so, readiness is 503; the CLI prints when to try again."""
    settings = worker_settings(tmp_path, web_port=free_port())
    app = worker_app(settings, recovered=False)
    serve(app, lambda http: recovering_then_ready(http, app, settings), port=settings.web_port)


async def recovering_then_ready(http: TestClient, app: faust.App, settings: Settings) -> None:
    ops = {"X-Api-Key": read_local_key(settings) or ""}
    for path in TABLE_VIEWS:
        assert (await http.get(path)).status == 401, path  # the door first: no key, no state
        response = await http.get(path, headers=ops)
        assert response.status == 503, path
        assert response.headers["Retry-After"] == "2"
        assert (await response.json())["status"] == "recovering"
    assert (await http.get("/v1/reports", headers=ops)).status == 200  # reads no table
    health = await http.get("/v1/health")
    assert (health.status, (await health.json())["status"]) == (200, "recovering")
    ready = await http.get("/v1/ready")
    assert (ready.status, ready.headers["Retry-After"]) == (503, "2")
    shown = await asyncio.to_thread(leadflow, settings, "queues")
    assert shown.returncode == 1
    assert "worker is recovering its state, try again in 2 s" in shown.stdout
    assert "open 0" not in shown.stdout

    app.tables.on_actives_ready()  # what Faust calls once the changelogs are read
    assert (await http.get("/v1/queues", headers=ops)).status == 200
    assert (await (await http.get("/v1/health")).json())["status"] == "ok"
    unassigned = await http.get("/v1/ready")  # recovered, but no partition of its own yet
    assert (unassigned.status, (await unassigned.json())["status"]) == (503, "unassigned")
    assign(app, settings.topic_prefix + "leads.inquiries")  # what the rebalance hands it
    assert (await http.get("/v1/ready")).status == 200
    shown = await asyncio.to_thread(leadflow, settings, "queues")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "open 0/-" in shown.stdout


def test_a_body_larger_than_an_inquiry_may_be_is_refused(tmp_path: Path) -> None:
    """The intake takes bodies up to its own limit; one that makes an inquiry over the
    inquiry limit would only be rejected by capture (or fail to send): 413 at once."""
    settings = worker_settings(tmp_path, intake_max_body_bytes=64 * 1024, input_max_bytes=4096)

    async def call(http: TestClient) -> None:
        body = orjson.dumps({"contact": {"email": "a@firma.de"}, "message": "x" * 5000})
        response = await http.post(
            "/v1/inquiries",
            data=body,
            headers={"X-Api-Key": "k-form", "Content-Type": "application/json"},
        )
        assert response.status == 413
        assert (await response.json())["error"] == "body over 4096 bytes as an inquiry"

    serve(worker_app(settings), call)


def sql_view(settings: Settings) -> tuple[faust.App, WarehouseSink]:
    """The report views on a stage of their own, with a sink this test holds (to close
    the embedded warehouse after: a process opens one chdb directory at a time)."""
    app = faust.App("http-sql-test", autodiscover=False)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    stage = Stage(app, settings, topics, load_rules(settings.rules_dir), reference_data(None))
    sink = WarehouseSink(settings, topics)
    serve_reports(stage, sink)
    return app, sink


def test_sql_answers_400_only_for_a_bad_query_and_503_for_an_outage(tmp_path: Path) -> None:
    ops = {"X-Api-Key": "k-ops"}
    keys = {"operator_keys": {"revops": SecretStr("k-ops")}}

    embedded, sink = sql_view(worker_settings(tmp_path / "embedded", **keys))

    async def on_the_embedded_warehouse(http: TestClient) -> None:
        try:
            good = await http.post(
                "/v1/sql", headers=ops, data=b"SELECT count() AS n FROM leadflow.leads"
            )
            assert (good.status, await good.json()) == (200, {"rows": [{"n": 0}]})
            for sql, name in (
                (b"SELEC 1", "SYNTAX_ERROR"),
                (b"SELECT nope FROM leadflow.leads", "UNKNOWN_IDENTIFIER"),
                (b"DROP TABLE leadflow.leads", "READONLY"),
            ):
                bad = await http.post("/v1/sql", headers=ops, data=sql)
                assert bad.status == 400, sql
                assert name in (await bad.json())["error"]
            report = await http.get("/v1/reports/funnel", headers=ops, params={"grain": "hour"})
            assert report.status == 400
        finally:
            await sink.close()

    serve(embedded, on_the_embedded_warehouse)

    nobody = f"http://default:@127.0.0.1:{free_port()}/default"
    away, _ = sql_view(worker_settings(tmp_path / "away", clickhouse_url=nobody, **keys))

    async def on_a_server_nobody_listens_on(http: TestClient) -> None:
        for answer in (
            await http.post("/v1/sql", headers=ops, data=b"SELECT 1"),
            await http.get("/v1/reports/funnel", headers=ops),
            await http.get("/dashboard", headers=ops),
        ):
            assert answer.status == 503
            assert "unavailable, try again later" in (await answer.json())["error"]

    serve(away, on_a_server_nobody_listens_on)

    wrong, _ = sql_view(worker_settings(tmp_path / "wrong", clickhouse_url="ftp://x", **keys))

    async def on_a_warehouse_url_that_is_no_url(http: TestClient) -> None:
        """Neither the query's fault nor an outage: ours, a bare 500."""
        answer = await http.post("/v1/sql", headers=ops, data=b"SELECT 1")
        assert (answer.status, await answer.json()) == (500, {"error": "internal error"})

    serve(wrong, on_a_warehouse_url_that_is_no_url)
