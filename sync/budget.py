"""Rate budgets shared by every worker that calls one platform account.

A leaky bucket per account lives in the state store (the coordination point in both the
embedded and the scaled-out mode). Before each call a worker reserves the call's cost; if the
bucket is short the reservation still goes through (the level goes negative) and the worker is
told how long to wait, so concurrent workers queue behind one another instead of racing into
429s. After each call the platform's own signal (Shopify's throttleStatus, HubSpot's remaining
header) corrects the level, because the platform, not our estimate, is the truth.

Live changes come before polls and polls before backfills: lower-priority work may only use the
bucket above a reserve kept for the more urgent kind.

Some platforms also count calls per day (Salesforce's rolling 24-hour API allocation, Zoho's
credits) and say how many are left. Lower-priority work stops at a reserve of that allocation
too (a Salesforce backfill at 20 % left, by default), so a backfill can never spend the calls a
merchant's own users and live changes need; it waits, keeping its place, and looks again after
``daily_probe_seconds`` (the allocation is a rolling window: what was spent a day ago comes
back, so a call now and then tells whether there is room again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from sqlalchemy.orm import Session, sessionmaker

from connectors.crm import DAILY_PROBE_SECONDS
from sync.db import transaction
from sync.models import RateBucket

# Fraction of the bucket each priority leaves untouched for more urgent work.
RESERVE_BY_PRIORITY = {0: 0.0, 1: 0.1, 2: 0.25}


# Fraction of a daily allocation each priority leaves untouched, unless the CRM's connection
# says otherwise (``daily_reserve`` is then the backfill's, polls keep a quarter of it).
DAILY_RESERVE_BY_PRIORITY = {0: 0.0, 1: 0.05, 2: 0.2}


@dataclass(frozen=True)
class Signal:
    """What a platform told us about its bucket after a call. ``remaining`` None: the call said
    nothing about the short-term bucket (only, perhaps, about the daily allocation)."""

    remaining: float | None = None
    capacity: float | None = None
    refill_per_second: float | None = None
    daily_remaining: float | None = None
    daily_limit: float | None = None


class SharedBudget:
    """Implements connectors.http.RateBudget over the ``rate_buckets`` table."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        key: str,
        *,
        capacity: float,
        refill_per_second: float,
        priority: int = 0,
        signal: Callable[[requests.Response], Signal | None] | None = None,
        clock: Callable[[], float] = time.time,
        daily_reserve: float | None = None,
        daily_probe_seconds: float = DAILY_PROBE_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.key = key
        self.capacity = capacity
        self.refill = refill_per_second
        self.reserve_fraction = RESERVE_BY_PRIORITY.get(priority, 0.25)
        daily = dict(DAILY_RESERVE_BY_PRIORITY)
        if daily_reserve is not None:
            daily.update({1: daily_reserve / 4, 2: daily_reserve})
        self.daily_reserve = daily.get(priority, daily[2])
        self.daily_probe_seconds = daily_probe_seconds
        self.signal = signal
        self.clock = clock

    def _bucket(self, session: Session, now: float) -> RateBucket:
        bucket = session.get(RateBucket, self.key)
        if bucket is None:
            bucket = RateBucket(
                key=self.key,
                capacity=self.capacity,
                refill_per_second=self.refill,
                level=self.capacity,
                as_of=now,
                blocked_until=0.0,
            )
            session.add(bucket)
            session.flush()
        elapsed = max(0.0, now - bucket.as_of)
        bucket.level = min(bucket.capacity, bucket.level + elapsed * bucket.refill_per_second)
        bucket.as_of = now
        return bucket

    def reserve(self, cost: float = 1.0) -> float:
        """Spend ``cost`` and return the seconds to wait before sending (0: go now)."""
        now = self.clock()
        with transaction(self.sessions) as session:
            bucket = self._bucket(session, now)
            if bucket.blocked_until > now:
                # The platform said "not before then" (Retry-After, a 429): nobody goes early.
                return bucket.blocked_until - now
            daily_wait = self._daily_wait(bucket, now, cost)
            if daily_wait:
                return daily_wait
            floor = self.reserve_fraction * bucket.capacity
            usable = bucket.level - floor
            bucket.level -= cost
            if usable >= cost:
                return 0.0
            return (cost - usable) / max(bucket.refill_per_second, 1e-6)

    def _daily_wait(self, bucket: RateBucket, now: float, cost: float) -> float:
        """Seconds to hold back because this priority's share of the daily allocation is
        spent; 0 once the last reading is older than the probe interval (go and look)."""
        if not self.daily_reserve or bucket.daily_remaining is None or not bucket.daily_limit:
            return 0.0
        floor = self.daily_reserve * bucket.daily_limit
        if bucket.daily_remaining - cost >= floor:
            bucket.daily_remaining -= cost
            return 0.0
        since = now - (bucket.daily_as_of or 0.0)
        if since >= self.daily_probe_seconds:
            bucket.daily_as_of = now  # one caller probes; the others keep waiting
            return 0.0
        return self.daily_probe_seconds - since

    def block_for(self, seconds: float) -> None:
        """Hold every worker of this account back for ``seconds`` (after a 429)."""
        now = self.clock()
        with transaction(self.sessions) as session:
            bucket = self._bucket(session, now)
            bucket.blocked_until = max(bucket.blocked_until, now + seconds)

    def observe(self, response: requests.Response) -> None:
        signal = self.signal(response) if self.signal else None
        if signal is None:
            return
        now = self.clock()
        with transaction(self.sessions) as session:
            bucket = self._bucket(session, now)
            if signal.capacity:
                bucket.capacity = signal.capacity
            if signal.refill_per_second:
                bucket.refill_per_second = signal.refill_per_second
            if signal.remaining is not None:
                bucket.level = min(bucket.capacity, signal.remaining)
            if signal.daily_remaining is not None:
                bucket.daily_remaining = signal.daily_remaining
                bucket.daily_limit = signal.daily_limit or bucket.daily_limit
                bucket.daily_as_of = now
