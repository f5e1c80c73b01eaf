"""The worker's HTTP door: every endpoint is served behind `guard` (key, rate,
body limit, recovering tables, no stack traces)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import faust
import structlog
from aiohttp import web as aiohttp_web
from faust.web import Request, View
from pydantic import SecretStr

from pipeline.config.access import RateLimiter, authenticate, presented_key
from pipeline.config.settings import Settings
from pipeline.errors import WarehouseUnavailable
from pipeline.worker import metrics
from pipeline.worker.faust_app import tables_ready

log = structlog.get_logger("leadflow.http")
RECOVERING_RETRY_SECONDS = 2
"""What a view that reads worker tables tells callers to wait while they recover."""
Keys = Callable[[Settings], Mapping[str, SecretStr]]
"""Whose keys open an endpoint: `operator_keys`, or e.g. the channels' intake keys."""
CALLER = aiohttp_web.RequestKey("leadflow.caller", str)


def guard(
    app: faust.App,
    settings: Settings,
    limiter: RateLimiter,
    path: str,
    keys: Keys | None,
    needs_tables: bool,
) -> Callable[[type[View]], type[View]]:
    """Serve a view on the worker's web server, behind the door every endpoint shares.

    A request needs a key of `keys` (`None`: public, for health and readiness), stays
    within its key's rate and the body limit, and never sees a stack trace:
    an error is logged and answered with a bare 500, a warehouse outage with 503
    (what to retry). The view reads who called with `caller(request)`. A view that
    reads worker tables (`needs_tables`) answers 503 `{"status": "recovering"}` with
    Retry-After until they are recovered: an empty table then is not yet the truth.
    """

    def decorate(view: type[View]) -> type[View]:
        class Guarded(view):  # type: ignore[valid-type, misc]
            async def dispatch(self, request: Any) -> Any:
                """The guarded answer, counted by route, method and status (metrics)."""
                started, status = time.perf_counter(), 500
                try:
                    response = await self._guarded(request)
                    status = response.status
                    return response
                except aiohttp_web.HTTPException as exc:
                    status = exc.status
                    raise
                finally:
                    metrics.http_request(
                        path, request.method, status, time.perf_counter() - started
                    )

            async def _guarded(self, request: Any) -> Any:
                if keys is not None:
                    who = authenticate(keys(settings), presented_key(request.headers))
                    # Without a valid key the budget is the caller's address:
                    # guessing keys is rate-limited too.
                    wait = limiter.wait(
                        f"{keys.__name__}:{who}" if who else f"no-key:{request.remote}"
                    )
                    if wait:
                        retry = str(math.ceil(wait))
                        body = {"error": f"too many requests; retry after {retry} s"}
                        return self.json(body, status=429, headers={"Retry-After": retry})
                    if who is None:
                        return self.json(
                            {"error": "missing or invalid X-Api-Key"},
                            status=401,
                            headers={"WWW-Authenticate": 'Basic realm="leadflow"'},
                        )
                    request[CALLER] = who
                declared = request.headers.get("Content-Length", "0")
                if declared.isdigit() and int(declared) > settings.intake_max_body_bytes:
                    limit = settings.intake_max_body_bytes
                    return self.json({"error": f"body over {limit} bytes"}, status=413)
                if needs_tables and not tables_ready(app):
                    recovering = {
                        "status": "recovering",
                        "error": "worker is recovering its state",
                        "retry_after": RECOVERING_RETRY_SECONDS,
                    }
                    retry_after = {"Retry-After": str(RECOVERING_RETRY_SECONDS)}
                    return self.json(recovering, status=503, headers=retry_after)
                try:
                    return await super().dispatch(request)
                except aiohttp_web.HTTPException:
                    raise  # aiohttp's own answers (e.g. 413 from its reader): no trace
                except WarehouseUnavailable as exc:  # any view that reads the warehouse
                    log.warning("http.warehouse_unavailable", path=path, error=str(exc))
                    return self.json({"error": str(exc)}, status=503)
                except Exception:
                    log.exception("http.error", path=path)
                    return self.json({"error": "internal error"}, status=500)

        Guarded.__name__ = Guarded.__qualname__ = view.__name__
        Guarded.__doc__ = view.__doc__
        return app.page(path, name=view.__name__)(Guarded)

    return decorate


def caller(request: Request) -> str:
    """Who called an endpoint: the name of the key presented (channel, rep, operator)."""
    return request[CALLER]  # type: ignore[index, no-any-return]
