"""The CRM bridge's delivery decisions."""

import pytest

from pipeline.crm_bridge import backoff, verdict


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "delivered"),
        (202, "delivered"),
        (None, "retry"),  # no answer: connection refused, timeout
        (500, "retry"),
        (503, "retry"),
        (429, "retry"),
        (408, "retry"),
        (400, "refused"),
        (401, "refused"),
        (404, "refused"),
        (422, "refused"),
    ],
)
def test_what_an_answer_means(status: int | None, expected: str) -> None:
    assert verdict(status) == expected


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff(n, 0.5, 3.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
