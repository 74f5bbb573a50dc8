"""HubSpot's rate limits for one account, as https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
describes them: a burst limit over a rolling 10-second window (100 per 10 s for a private app
on a Free/Starter account), a daily limit that resets at midnight in the account's time zone,
and a separate limit for the search endpoints (5 requests per second) whose responses carry no
rate-limit headers (https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

WINDOW_MS = 10_000
SEARCH_WINDOW_MS = 1_000


@dataclass(frozen=True)
class Limits:
    burst: int = 100
    daily: int = 250_000
    search_per_second: int = 5
    time_zone: str = "UTC"


@dataclass(frozen=True)
class Verdict:
    """Whether a call may proceed; if not, which policy refused it."""

    allowed: bool
    policy: str | None = None
    headers: dict[str, str] | None = None


class RateLimiter:
    """Counts one account's calls. Not thread-safe on its own: the simulator's lock guards it."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._zone = ZoneInfo(limits.time_zone)
        self._burst: deque[int] = deque()
        self._search: deque[int] = deque()
        self._day: date | None = None
        self._daily_used = 0

    def reconfigure(self, limits: Limits) -> None:
        self.limits = limits
        self._zone = ZoneInfo(limits.time_zone)

    def _roll(self, now_ms: int) -> None:
        while self._burst and self._burst[0] <= now_ms - WINDOW_MS:
            self._burst.popleft()
        while self._search and self._search[0] <= now_ms - SEARCH_WINDOW_MS:
            self._search.popleft()
        today = datetime.fromtimestamp(now_ms / 1000, tz=self._zone).date()
        if today != self._day:
            self._day = today
            self._daily_used = 0

    def headers(self, now_ms: int) -> dict[str, str]:
        """The X-HubSpot-RateLimit-* headers as of ``now_ms``."""
        self._roll(now_ms)
        return {
            "X-HubSpot-RateLimit-Daily": str(self.limits.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(
                max(0, self.limits.daily - self._daily_used)
            ),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(WINDOW_MS),
            "X-HubSpot-RateLimit-Max": str(self.limits.burst),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.limits.burst - len(self._burst))),
        }

    def admit(self, now_ms: int, *, search: bool) -> Verdict:
        """Count a call made at ``now_ms`` if the limits allow it.

        Search calls count against the daily limit and the search limit only; the burst window
        is for every other endpoint. Refused calls are not counted.
        """
        self._roll(now_ms)
        if self._daily_used >= self.limits.daily:
            return Verdict(False, "DAILY", None if search else self.headers(now_ms))
        if search:
            if len(self._search) >= self.limits.search_per_second:
                return Verdict(False, "SECONDLY")
            self._search.append(now_ms)
            self._daily_used += 1
            return Verdict(True)
        if len(self._burst) >= self.limits.burst:
            return Verdict(False, "TEN_SECONDLY_ROLLING", self.headers(now_ms))
        self._burst.append(now_ms)
        self._daily_used += 1
        return Verdict(True, headers=self.headers(now_ms))

    def seconds_to_window(self, now_ms: int) -> float:
        """Seconds until the oldest call in the burst window drops out."""
        self._roll(now_ms)
        if not self._burst:
            return 0.0
        return max(0.0, (self._burst[0] + WINDOW_MS - now_ms) / 1000)
