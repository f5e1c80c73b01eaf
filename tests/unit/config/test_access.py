"""The door of the HTTP endpoints, without a web server: rate limits, the local key
and where a caller's key is read from."""

import base64
from pathlib import Path

from pydantic import SecretStr

from pipeline.config.access import (
    RateLimiter,
    ensure_local_key,
    operator_key,
    operator_keys,
    presented_key,
)
from pipeline.config.settings import load_settings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_request_per_refill_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)
    assert [limiter.wait("ops") for _ in range(2)] == [0.0, 0.0]
    assert limiter.wait("ops") == 1.0  # one token a second
    clock.now = 0.5
    assert limiter.wait("ops") == 0.5
    clock.now = 1.0
    assert limiter.wait("ops") == 0.0
    assert limiter.wait("other") == 0.0  # every caller has its own bucket


def test_an_idle_caller_saves_up_no_more_than_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    clock.now = 3600.0
    assert [limiter.wait("ops") == 0.0 for _ in range(4)] == [True, True, True, False]


def test_without_operator_keys_the_worker_makes_one_local_key(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path)
    assert operator_key(settings) is None
    ensure_local_key(settings)
    first = operator_key(settings)
    assert first and len(first) >= 32
    ensure_local_key(settings)  # a second worker on the same state directory
    assert operator_key(settings) == first
    assert (tmp_path / "operator.key").stat().st_mode & 0o077 == 0


def test_configured_operator_keys_replace_the_local_key(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path, operator_keys={"revops": SecretStr("k")})
    ensure_local_key(settings)
    assert not (tmp_path / "operator.key").exists()
    assert list(operator_keys(settings)) == ["revops"]
    assert operator_key(settings) == "k"


def test_the_key_comes_from_the_header_or_from_basic_authentication() -> None:
    assert presented_key({"X-Api-Key": "k1"}) == "k1"
    basic = base64.b64encode(b"anyone:k2").decode()
    assert presented_key({"Authorization": f"Basic {basic}"}) == "k2"
    assert presented_key({"Authorization": "Basic !!!"}) is None
    assert presented_key({"Authorization": "Bearer k3"}) is None
    assert presented_key({}) is None
