"""Analysts cannot starve reports (issue 19, point 4): `POST /v1/sql` runs in a
warehouse session and thread of its own, within its own limits, so a report asked
while a slow analyst query runs answers first. Real chdb, the worker's real views."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from pipeline.adapters.warehouse.clickhouse import AnalystLimits
from tests.integration.test_http_access import serve, sql_view, worker_settings

OPS = {"X-Api-Key": "k-ops"}
SLOW = b"SELECT count() FROM numbers(1000000000000) WHERE number % 7 = 3"
"""Counts for hours; only its time limit ends it."""


def test_a_report_answers_while_a_slow_analyst_query_runs_to_its_limit(tmp_path: Path) -> None:
    settings = worker_settings(
        tmp_path, operator_keys={"revops": SecretStr("k-ops")}, sql_timeout_seconds=6
    )
    app, sink = sql_view(settings)
    finished: list[str] = []

    async def race(http: TestClient) -> None:
        try:
            # both sessions open, the schema migrated: the race is only the queries
            assert (await http.post("/v1/sql", headers=OPS, data=b"SELECT 1 AS one")).status == 200
            assert (await http.get("/v1/reports/funnel", headers=OPS)).status == 200

            async def analyst() -> tuple[int, dict]:
                answer = await http.post("/v1/sql", headers=OPS, data=SLOW)
                finished.append("sql")
                return answer.status, await answer.json()

            async def reports() -> list[int]:
                await asyncio.sleep(1.0)  # the analyst's query is running by now
                statuses = []
                for name in ("funnel", "speed", "sources"):
                    answer = await http.get(f"/v1/reports/{name}", headers=OPS)
                    statuses.append(answer.status)
                    finished.append(name)
                return statuses

            (status, body), statuses = await asyncio.gather(analyst(), reports())
            assert statuses == [200, 200, 200]
            # the query ran to its own limit, and said so: the analyst's to fix
            assert status == 400 and "TIMEOUT_EXCEEDED" in body["error"]
        finally:
            await sink.close()

    serve(app, race)
    assert finished == ["funnel", "speed", "sources", "sql"]


def test_the_analyst_limits_come_from_the_settings_and_are_shorter_than_before(
    tmp_path: Path,
) -> None:
    limits = AnalystLimits.of(worker_settings(tmp_path))
    assert limits.seconds < 30 and limits.rows == 10_000 and limits.memory_bytes > 0
    clause = AnalystLimits(4, 50, 10_000_000).sql()
    assert "readonly = 1" in clause and "max_execution_time = 4" in clause
    assert "max_result_rows = 50" in clause and "max_memory_usage = 10000000" in clause


def test_an_analyst_query_over_its_memory_limit_is_the_analysts_400(tmp_path: Path) -> None:
    settings = worker_settings(
        tmp_path, operator_keys={"revops": SecretStr("k-ops")}, sql_max_memory_bytes=10_000_000
    )
    app, sink = sql_view(settings)

    async def greedy(http: TestClient) -> None:
        try:
            sql = b"SELECT groupArray(number) FROM numbers(100000000)"
            answer = await http.post("/v1/sql", headers=OPS, data=sql)
            assert answer.status == 400
            assert "MEMORY_LIMIT_EXCEEDED" in (await answer.json())["error"]
            assert (await http.get("/v1/reports/funnel", headers=OPS)).status == 200
        finally:
            await sink.close()

    serve(app, greedy)
