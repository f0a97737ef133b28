"""The brake's limit is floor(halt_error_rate * halt_window) of the figures as the operator wrote
them (SPEC section 7), not of their binary approximations."""

from __future__ import annotations

import pytest

from app.models import RetryJob
from app.retries.job_lane import brake_limit, brake_reason


@pytest.mark.parametrize(
    "rate, window, limit",
    [(0.2, 25, 5), (0.29, 100, 29), (0.57, 100, 57), (0.1, 30, 3), (0.0, 25, 0), (1.0, 7, 7), (0.33, 10, 3)],
)
def test_the_limit_is_the_floor_of_the_written_product(rate, window, limit):
    assert brake_limit(RetryJob(halt_error_rate=rate, halt_window=window)) == limit


def test_the_reason_quotes_the_same_limit():
    job = RetryJob(halt_error_rate=0.29, halt_window=100)
    assert brake_reason(30, 100, job) == "30 of the last 100 replays failed, limit 29 (29%)"
