"""What every CRM connector shares: the per-record write result and the access-token cache.

The sync engine talks to HubSpot, Zoho CRM and Salesforce through the same few methods
(``upsert_contacts_by_email``, ``update_objects``, ``upsert_objects``, ``archive_objects``,
``changed_since``); each returns or yields platform records, and every write returns one
:class:`WriteResult` per input, in input order, so one refused record never hides the others.

OAuth CRMs (Zoho, Salesforce) mint short-lived access tokens from a refresh token. A token is
shared by every worker of an account and refreshed by at most one of them at a time: the
connector asks a :class:`TokenCache` for the current token and hands it the function that mints
a new one. ``sync.tokens`` keeps them in the state store (encrypted, leased); the in-memory
:class:`MemoryTokenCache` serves a single process (tests).

Salesforce may rotate refresh tokens: a refresh then answers with a new refresh token and the
old one stops working (using it again revokes the whole family, and the merchant must reconnect;
https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_rotation.htm).
So the cache also keeps the latest refresh token it was given and hands it to the next mint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

# A spent daily allocation (Salesforce's rolling 24-hour API count, Zoho's credits) says nothing
# about when calls come back: what was spent a day ago returns bit by bit. Held-back work looks
# again this often, long enough that the job is rescheduled rather than blocking a worker.
DAILY_PROBE_SECONDS = 15 * 60.0


@dataclass(frozen=True)
class WriteResult:
    """The outcome for one input of a write, in input order.

    ``details`` is the platform's own error, kept verbatim for the dead letter; ``not_found``
    says the record addressed by id no longer exists in the CRM (deleted since we linked it),
    so the engine can recreate it instead of dead-lettering the change. ``updated_at`` is, for
    a store write, the store's modification time of the customer after the write (UTC-aware,
    from the platform's answer), so the engine can recognise the change when it comes back.
    """

    key: str
    ok: bool
    id: str | None = None
    created: bool | None = None
    error: str | None = None
    details: object = None
    not_found: bool = False
    updated_at: datetime | None = None


@dataclass(frozen=True)
class AccessToken:
    """A bearer token, when it stops being valid (epoch seconds), and the host to call with it
    (Salesforce's ``instance_url``, Zoho's ``api_domain``; None where the host is fixed).
    ``refresh_token`` is set when the platform rotated the refresh token with this mint.
    Secrets are left out of the repr, so a logged token object shows none of them."""

    value: str = field(repr=False)
    expires_at: float
    instance_url: str | None = None
    refresh_token: str | None = field(default=None, repr=False)

    def fresh(self, now: float, margin: float = 60.0) -> bool:
        """Still usable for a call starting now (with ``margin`` seconds to spare)."""
        return now + margin < self.expires_at


# Mints a token. Its argument is the latest rotated refresh token the cache holds, or None
# when the platform never rotated it (the connection's own refresh token then applies).
Mint = Callable[[str | None], AccessToken]


class TokenCache(Protocol):
    def get(self, mint: Mint, *, rejected: str | None = None) -> AccessToken:
        """The account's current token: the cached one while it is fresh and is not
        ``rejected`` (the value a platform just refused with 401), else a new one from
        ``mint(latest_refresh_token)``. At most one caller per account mints at a time; the
        others wait for its token. Raises whatever ``mint`` raises."""
        ...


class MemoryTokenCache:
    """A TokenCache for one process: a lock instead of the state store's lease."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._refresh_token: str | None = None
        self._clock = clock
        self.minted = 0  # how many times a token was minted (tests read it)

    def get(self, mint: Mint, *, rejected: str | None = None) -> AccessToken:
        with self._lock:
            token = self._token
            if token is not None and token.fresh(self._clock()) and token.value != rejected:
                return token
            self._token = mint(self._refresh_token)
            self._refresh_token = self._token.refresh_token or self._refresh_token
            self.minted += 1
            return self._token
