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


def _daily(remaining: float, limit: float) -> Signal:
    return Signal(daily_remaining=remaining, daily_limit=limit)


def test_a_backfill_pauses_at_the_daily_reserve_and_probes_again_later(sessions):
    clock = Clock()
    reading = {"signal": _daily(25_000, 100_000)}
    kw = {"capacity": 1e9, "refill_per_second": 1e9, "signal": lambda r: reading["signal"]}
    backfill = budget(sessions, clock, priority=2, daily_probe_seconds=900.0, **kw)
    live = budget(sessions, clock, priority=0, **kw)
    backfill.observe(requests.Response())  # 25 % of the allocation left
    # 20 % is kept for the merchant's own users and live changes: 5,000 calls are the
    # backfill's, then it waits a probe interval instead of spending the rest.
    assert [backfill.reserve() for _ in range(5000)] == [0.0] * 5000
    assert backfill.reserve() == pytest.approx(900.0)
    assert live.reserve() == 0.0  # live changes are never held back by the daily reserve
    clock.now += 899
    assert backfill.reserve() == pytest.approx(1.0)
    clock.now += 1
    assert backfill.reserve() == 0.0  # one probe goes out...
    assert backfill.reserve() == pytest.approx(900.0)  # ...the others keep waiting for it
    reading["signal"] = _daily(60_000, 100_000)  # the rolling window gave calls back
    backfill.observe(requests.Response())
    assert backfill.reserve() == 0.0


def test_a_configured_daily_reserve_replaces_the_default(sessions):
    clock = Clock()
    reading = _daily(45_000, 100_000)
    backfill = budget(
        sessions, clock, priority=2, daily_reserve=0.5, capacity=100.0, signal=lambda r: reading
    )
    backfill.observe(requests.Response())
    assert backfill.reserve() > 0  # 45 % left is below a 50 % reserve
