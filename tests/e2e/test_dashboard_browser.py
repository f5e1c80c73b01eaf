"""The dashboard in a real browser: `leadflow report dashboard --out` writes the
page from a warehouse holding the report scenario (no worker runs, so the CLI
opens the warehouse itself), Debian's headless Chromium loads it offline, every
chart is drawn, the console stays empty, and a screenshot is kept."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.adapters.warehouse.clickhouse import (
    EVENTS_TABLE,
    EmbeddedWarehouse,
    load_migrations,
    migrate,
)
from pipeline.config.settings import PROJECT_ROOT, Settings, load_settings
from tests.support.browser import chromium
from tests.support.processes import leadflow
from tests.support.scenario import scenario
from tests.support.settings import free_port

CHARTS = ("funnel", "volume", "speed", "roi", "attribution", "load")
SCREENSHOT_COPY = PROJECT_ROOT / "build" / "test-artifacts" / "dashboard.png"


def browse(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",  # tests may run as root in CI containers
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture
def page(tmp_path: Path) -> Path:
    settings: Settings = load_settings(state_dir=tmp_path / "state", web_port=free_port())
    warehouse = EmbeddedWarehouse(settings.embedded_warehouse_dir)
    try:
        migrate(warehouse, load_migrations())
        warehouse.insert(EVENTS_TABLE, scenario().rows())
    finally:
        warehouse.close()
    out = tmp_path / "dashboard.html"
    written = leadflow(settings, "report", "dashboard", "--out", str(out), timeout=120)
    assert written.returncode == 0, written.stdout + written.stderr
    return out


def test_the_dashboard_renders_every_chart_in_chromium(page: Path, tmp_path: Path) -> None:
    browser = chromium()
    html = page.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html), "must be self-contained"

    dom = browse(browser, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert 'data-rendered="6"' in dom.stdout
    assert "data-errors" not in dom.stdout
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    for chart in CHARTS:
        svg = re.search(rf'<svg[^>]*data-chart="chart-{chart}".*?</svg>', dom.stdout, re.S)
        assert svg is not None, chart
        assert svg.group(0).count('class="bar"') >= 2, chart
    assert "trade_fair" in dom.stdout and "lena.fischer" in dom.stdout
    models = re.search(r'<svg[^>]*data-chart="chart-attribution".*?</svg>', dom.stdout, re.S)
    assert models is not None  # all nine models in the legend, the data-driven ones too
    legend = re.findall(r"<text[^>]*>([a-z_]+)</text>", models.group(0))
    assert {"first_touch", "time_decay", "markov", "shapley"} <= set(legend), legend

    shot = tmp_path / "dashboard.png"
    browse(
        browser,
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1400,1800",
        "--hide-scrollbars",
        page.as_uri(),
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT_COPY)
    print(f"dashboard screenshot: {SCREENSHOT_COPY}")


def test_text_from_leads_cannot_break_out_of_the_page_data() -> None:
    from datetime import UTC, datetime

    from pipeline.reporting.dashboard import render_dashboard

    evil = "</script><script>alert(1)</script>"
    html = render_dashboard(
        {"funnel": [], "roi": [{"channel": "x", "campaign": evil, "roi": 1.0}]},
        datetime(2026, 11, 2, tzinfo=UTC),
    )
    assert evil not in html
    assert html.count("</script>") == 2  # the data element's and the code's
