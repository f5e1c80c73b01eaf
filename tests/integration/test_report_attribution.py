"""The data-driven attribution models on a returning customer: the touches after
its won deal are a journey that has not converted (yet), the touches before it
are not counted twice; --since keeps the journeys that end in the period (its
own warehouse: the embedded engine holds one directory per process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.adapters.warehouse.clickhouse import (
    EVENTS_TABLE,
    EmbeddedWarehouse,
    load_migrations,
    migrate,
)
from pipeline.reporting.reports import ReportInputs, parse_params, run_report
from tests.support.scenario import Scenario, day


def credit(rows: list[dict], model: str) -> dict[str, tuple[float, float]]:  # type: ignore[type-arg]
    return {r["channel"]: (r[f"{model}_conversions"], r[model]) for r in rows}


def test_touches_after_a_win_are_a_journey_that_has_not_converted(tmp_path: Path) -> None:
    """G: web_form, won 600 on day 1, back via the webinar on day 3 (no second deal).
    H: web_form, webinar, won 400 on day 2. Journeys: [web_form] won, [webinar] not
    (G's return, without the touch before its deal), [web_form, webinar] won.
    Markov: start → web_form ⅔, webinar ⅓; web_form → conversion ½, → webinar ½;
    webinar → conversion ½, → null ½. P(conversion) ⅔; removal effects web_form ¾,
    webinar ½ (5/4): 1.2 and 0.8 deals; in value ⅔·400 and ⅔·200 of 1000/3:
    0.8 and 0.4 – 666.67 and 333.33 EUR. (Without G's return web_form would get
    4/3 deals; with the touch before the win in it, too.)"""
    s = Scenario()
    s.inquiry("G", day(0), "web_form", "spring")
    s.crm("G", day(1), "won", amount_eur=600.0)
    s.inquiry("G", day(3), "webinar", "wb-scoring")
    s.inquiry("H", day(0), "web_form", "pricing")
    s.inquiry("H", day(1), "webinar", "wb-scoring")
    s.crm("H", day(2), "won", amount_eur=400.0)
    w = EmbeddedWarehouse(tmp_path)
    try:
        migrate(w, load_migrations())
        w.insert(EVENTS_TABLE, s.rows())
        rows = run_report(w, "attribution", parse_params({}), ReportInputs())
        since = run_report(w, "attribution", parse_params({"since": "2026-11-04"}), ReportInputs())
    finally:
        w.close()
    assert credit(rows, "markov") == {
        "web_form": (pytest.approx(1.2), pytest.approx(666.67)),
        "webinar": (pytest.approx(0.8), pytest.approx(333.33)),
    }
    # Shapley: {web_form} converts 1 of 1, {webinar} 0 of 1, both together 1 of 1;
    # per journey {web_form} is worth 600, together 400: the webinar lowers it
    assert credit(rows, "shapley") == {"web_form": (2, 1100), "webinar": (0, -100)}
    # since day 2: G's deal is out, its return is in – [webinar] not, [web_form,
    # webinar] won; Markov: web_form → webinar 1, webinar → conversion ½: effects
    # ½ and 1; Shapley: {web_form} was never alone, each adds ½ of the rate
    assert credit(since, "markov") == {
        "web_form": (pytest.approx(1 / 3, abs=1e-4), pytest.approx(133.33)),
        "webinar": (pytest.approx(2 / 3, abs=1e-4), pytest.approx(266.67)),
    }
    assert (
        credit(since, "shapley")
        == credit(since, "linear")
        == {
            "web_form": (0.5, 200),
            "webinar": (0.5, 200),
        }
    )
