"""Rate budgets shared by every worker that calls one platform account.

A leaky bucket per account lives in the state store (the coordination point in both the
embedded and the scaled-out mode). Before each call a worker reserves the call's cost; if the
bucket is short the reservation still goes through (the level goes negative) and the worker is
told how long to wait, so concurrent workers queue behind one another instead of racing into
429s. After each call the platform's own signal (Shopify's throttleStatus, HubSpot's remaining
header) corrects the level, because the platform, not our estimate, is the truth.

Live changes come before polls and polls before backfills: lower-priority work may only use the
bucket above a reserve kept for the more urgent kind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from sqlalchemy.orm import Session, sessionmaker

from sync.db import transaction
from sync.models import RateBucket

# Fraction of the bucket each priority leaves untouched for more urgent work.
RESERVE_BY_PRIORITY = {0: 0.0, 1: 0.1, 2: 0.25}


@dataclass(frozen=True)
class Signal:
    """What a platform told us about its bucket after a call."""

    remaining: float
    capacity: float | None = None
    refill_per_second: float | None = None


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
    ) -> None:
        self.sessions = sessions
        self.key = key
        self.capacity = capacity
        self.refill = refill_per_second
        self.reserve_fraction = RESERVE_BY_PRIORITY.get(priority, 0.25)
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
            floor = self.reserve_fraction * bucket.capacity
            usable = bucket.level - floor
            bucket.level -= cost
            if usable >= cost:
                return 0.0
            return (cost - usable) / max(bucket.refill_per_second, 1e-6)

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
            bucket.level = min(bucket.capacity, signal.remaining)
