"""The replay window (`leadflow replay --since/--until`): dates only, in order, and the
SQL it adds names only the dates given."""

from __future__ import annotations

from datetime import date

import pytest

from pipeline.errors import BadRequest
from pipeline.reporting.replay import Window


def test_the_window_takes_dates_in_order() -> None:
    window = Window.parse("2026-11-01", "2026-12-01")
    assert (window.since, window.until) == (date(2026, 11, 1), date(2026, 12, 1))
    assert "min(occurred_at) >= '2026-11-01'" in window.sql()
    assert window.sql().endswith("AND occurred_at < '2026-12-01'")
    assert Window.parse(None, None).sql() == "1"


@pytest.mark.parametrize(
    ("since", "until", "says"),
    [
        ("1.11.2026", None, "--since takes a date"),
        (None, "2026-11-01'; DROP TABLE x", "--until takes a date"),
        ("2026-12-01", "2026-11-01", "--since must be before --until"),
    ],
)
def test_a_bad_window_is_refused_before_any_query(since: str, until: str, says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        Window.parse(since, until)
