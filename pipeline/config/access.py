"""Who may call the worker's HTTP endpoints, and how often – without the web server.

Every endpoint but health needs a key (`X-Api-Key`, or HTTP Basic's password
for a browser): channels have intake keys,
reps claim keys, operators (CLI, dashboards, analysts) operator keys. Keys are
compared in constant time; each key has its own request budget (a token
bucket), so one noisy caller cannot starve the others.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from pipeline.config.settings import Settings

LOCAL_OPERATOR = "local"
OPERATOR_KEY_FILE = "operator.key"


def authenticate(keys: Mapping[str, SecretStr], presented: str | None) -> str | None:
    """The name whose key was presented; every key is compared in constant time."""
    found = None
    given = (presented or "").encode()
    for name, key in keys.items():
        if hmac.compare_digest(key.get_secret_value().encode(), given) and presented:
            found = name
    return found


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a caller presented: `X-Api-Key`, or the password of HTTP Basic
    authentication (what a browser sends after asking, e.g. for the dashboard)."""
    key = headers.get("X-Api-Key")
    if key:
        return str(key)
    scheme, _, encoded = str(headers.get("Authorization", "")).partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None


@dataclass
class RateLimiter:
    """A token bucket per caller: `burst` requests at once, refilled at `per_minute`."""

    per_minute: int
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def wait(self, caller: str) -> float:
        """0 if the caller may go ahead now (and spend a token), else seconds to wait."""
        now = self.clock()
        tokens, then = self._buckets.get(caller, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_minute / 60.0)
        if tokens >= 1.0:
            self._buckets[caller] = (tokens - 1.0, now)
            return 0.0
        self._buckets[caller] = (tokens, now)
        return (1.0 - tokens) * 60.0 / self.per_minute


def operator_keys(settings: Settings) -> dict[str, SecretStr]:
    """The configured operator keys, else the worker's local key (see `ensure_local_key`)."""
    if settings.operator_keys:
        return dict(settings.operator_keys)
    key = read_local_key(settings)
    return {LOCAL_OPERATOR: SecretStr(key)} if key else {}


def ensure_local_key(settings: Settings) -> None:
    """Without configured operator keys, the worker makes one for this machine:
    `STATE_DIR/operator.key` (mode 600), which the CLI on the same machine reads.

    Created once and atomically, so workers sharing a state directory agree.
    """
    if settings.operator_keys or read_local_key(settings):
        return
    path = settings.state_dir / OPERATOR_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{OPERATOR_KEY_FILE}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32))
    try:
        os.link(draft, path)  # fails if another worker was first: its key stands
    except FileExistsError:
        pass
    finally:
        draft.unlink()


def read_local_key(settings: Settings) -> str | None:
    path: Path = settings.state_dir / OPERATOR_KEY_FILE
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def operator_key(settings: Settings) -> str | None:
    """The key the CLI presents to the worker: the first configured one, else the local one."""
    keys = operator_keys(settings)
    return next(iter(keys.values())).get_secret_value() if keys else None


CORS_METHODS = "POST, OPTIONS"
CORS_HEADERS = "Content-Type, Idempotency-Key"


def cors_headers(origin: str | None, allowed: list[str] | None) -> dict[str, str]:
    """The CORS answer for a browser page at `origin` posting a form whose channel
    takes posts from `allowed` origins (None: any). Nothing for a request without an
    Origin (a server, curl) or from an origin not allowed: the browser then keeps
    the answer from the page's script."""
    if origin is None or (allowed is not None and origin not in allowed):
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": CORS_METHODS,
        "Access-Control-Allow-Headers": CORS_HEADERS,
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }
