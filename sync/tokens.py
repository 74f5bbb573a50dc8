"""OAuth access tokens shared by every worker of one CRM account (connectors.crm.TokenCache).

Zoho allows at most 10 access tokens per refresh token in 10 minutes and a handful of refreshes
a minute (https://www.zoho.com/accounts/protocol/oauth/limits.html, reference §3.1); a fleet of
workers that each refreshed on their own would trip that and revoke each other's sessions. So
the token lives in the state store, encrypted like every credential, and at most one worker at a
time mints a new one: it takes a lease on the row with a compare-and-set UPDATE (atomic on
SQLite and PostgreSQL alike), calls the platform outside any transaction (a network call must
never hold the state store's write lock), stores the token (and a rotated refresh token, if the
platform issued one) and drops the lease. Everyone else waits for that token. A worker that
dies while holding the lease only delays the next mint until the lease runs out.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from connectors.crm import AccessToken, Mint
from connectors.errors import RetriableError
from sync.db import transaction
from sync.models import AccessTokenRow
from sync.secrets import Vault

LEASE_SECONDS = 30.0  # longer than a token call can take (the HTTP client's read timeout)
POLL_SECONDS = 0.1


class SharedTokenCache:
    """Implements connectors.crm.TokenCache over the ``access_tokens`` table."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        vault: Vault,
        key: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.vault = vault
        self.key = key
        self.clock = clock
        self.sleep = sleep
        self.lease_seconds = lease_seconds

    def _read(self, session: Session) -> tuple[AccessToken | None, AccessTokenRow]:
        row = session.get(AccessTokenRow, self.key)
        if row is None:
            row = AccessTokenRow(key=self.key, expires_at=0.0, lease_until=0.0, minted=0)
            session.add(row)
            session.flush()
        if row.ciphertext is None:
            return None, row
        value = self.vault.unseal(row.ciphertext)
        if value is None:
            return None, row  # its key was rotated away: mint a new one
        return AccessToken(value, row.expires_at, row.instance_url), row

    def _usable(self, token: AccessToken | None, rejected: str | None) -> bool:
        return token is not None and token.fresh(self.clock()) and token.value != rejected

    def get(self, mint: Mint, *, rejected: str | None = None) -> AccessToken:
        """The current token, minting one (at most one worker at a time) when it is stale or
        was ``rejected``. Raises what ``mint`` raises, or RetriableError if another worker's
        mint neither finishes nor gives up its lease within two lease periods."""
        deadline = self.clock() + 2 * self.lease_seconds
        while True:
            try:
                with transaction(self.sessions) as session:
                    token, row = self._read(session)
                    if self._usable(token, rejected):
                        return token
                    now = self.clock()
                    # Only if nobody holds the lease and nobody minted since we looked: under
                    # READ COMMITTED the UPDATE sees a mint that committed after our read.
                    taken = session.execute(
                        update(AccessTokenRow)
                        .where(
                            AccessTokenRow.key == self.key,
                            AccessTokenRow.lease_until < now,
                            AccessTokenRow.minted == row.minted,
                        )
                        .values(lease_until=now + self.lease_seconds)
                    ).rowcount
            except IntegrityError:
                continue  # another worker created the row at the same moment: read theirs
            if taken:
                return self._mint(mint)
            if self.clock() > deadline:
                raise RetriableError(f"another worker is still refreshing the {self.key} token")
            self.sleep(POLL_SECONDS)

    def _mint(self, mint: Mint) -> AccessToken:
        with transaction(self.sessions) as session:
            row = session.get(AccessTokenRow, self.key)
            sealed = row.refresh_ciphertext if row is not None else None
        rotated = self.vault.unseal(sealed) if sealed else None
        try:
            token = mint(rotated)
        except BaseException:
            with transaction(self.sessions) as session:
                session.execute(
                    update(AccessTokenRow)
                    .where(AccessTokenRow.key == self.key)
                    .values(lease_until=0.0)
                )
            raise
        with transaction(self.sessions) as session:
            row = session.get(AccessTokenRow, self.key)
            assert row is not None  # created by _read before the lease was taken
            row.ciphertext = self.vault.seal(token.value)
            row.expires_at = token.expires_at
            row.instance_url = token.instance_url
            if token.refresh_token:
                # Written with the access token, under the lease: the old refresh token is
                # dead from now on, and the next mint (any worker) must use this one.
                row.refresh_ciphertext = self.vault.seal(token.refresh_token)
            row.lease_until = 0.0
            row.minted += 1
        return token
