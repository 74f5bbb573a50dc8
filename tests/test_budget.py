"""The rate budget shared by every worker of one platform account."""

from __future__ import annotations

import pytest
import requests

from sync.budget import SharedBudget, Signal


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def budget(sessions, clock, **kw) -> SharedBudget:
    defaults = {"capacity": 10.0, "refill_per_second": 1.0, "clock": clock}
    return SharedBudget(sessions, "hubspot:1", **{**defaults, **kw})


def test_spending_past_the_bucket_tells_each_caller_how_long_to_wait(sessions):
    clock = Clock()
    live = budget(sessions, clock)
    assert [live.reserve() for _ in range(10)] == [0.0] * 10
    # Two more callers queue one behind the other instead of racing into a 429.
    assert live.reserve() == pytest.approx(1.0)
    assert live.reserve() == pytest.approx(2.0)
    clock.now += 5
    assert live.reserve() == pytest.approx(0.0)


def test_backfills_leave_room_for_live_changes(sessions):
    clock = Clock()
    backfill = budget(sessions, clock, priority=2)  # keeps 25 % in reserve
    live = budget(sessions, clock, priority=0)
    waits = [backfill.reserve() for _ in range(8)]
    assert waits[:7] == [0.0] * 7 and waits[7] > 0  # stopped at the reserve (7.5 of 10 usable)
    assert live.reserve() == 0.0  # the reserve is there for the webhook


def test_a_platform_not_before_holds_every_worker(sessions):
    clock = Clock()
    one, other = budget(sessions, clock), budget(sessions, clock)
    one.block_for(30)
    assert other.reserve() == pytest.approx(30)
    clock.now += 31
    assert other.reserve() == 0.0


def test_the_platforms_own_signal_wins_over_our_estimate(sessions):
    clock = Clock()

    def signal(response):
        return Signal(
            remaining=float(response.headers["X-Remaining"]), capacity=100.0, refill_per_second=10.0
        )

    shared = budget(sessions, clock, signal=signal)
    response = requests.Response()
    response.headers["X-Remaining"] = "0"
    shared.observe(response)  # another app spent the account's quota
    assert shared.reserve() == pytest.approx(0.1)
