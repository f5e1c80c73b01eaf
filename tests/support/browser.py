"""Debian's headless Chromium, as the browser tests run it."""

from __future__ import annotations

import shutil

import pytest


def chromium() -> str:
    """The browser's path; without one the test skips, saying how to get it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip(
            "no Chromium on this machine (scripts/ensure-chromium.sh, run by `make test`, "
            "installs Debian's chromium; it printed why it could not)"
        )
    return found
