"""Access tokens shared by every worker of a CRM account: minted once, refreshed once."""

from __future__ import annotations

import threading

import pytest
from cryptography.fernet import Fernet, MultiFernet

from connectors.crm import AccessToken
from connectors.errors import ConfigurationError
from sync.db import transaction
from sync.models import AccessTokenRow
from sync.secrets import Vault
from sync.tokens import SharedTokenCache


class Minter:
    """Counts mints; each new token lasts an hour from the test clock."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, rotated: str | None) -> AccessToken:
        with self.lock:
            self.calls += 1
            n = self.calls
        return AccessToken(f"token-{n}", self.clock[0] + 3600, "https://api.example.test")


def cache(sessions, vault, clock: list[float]) -> SharedTokenCache:
    return SharedTokenCache(
        sessions, vault, "zoho:org-1", clock=lambda: clock[0], sleep=lambda s: None
    )


@pytest.fixture
def vault() -> Vault:
    return Vault(MultiFernet([Fernet(Fernet.generate_key())]))


def test_a_fresh_token_is_reused_and_an_expired_one_minted_again(sessions, vault):
    clock = [1000.0]
    mint = Minter(clock)
    tokens = cache(sessions, vault, clock)
    first = tokens.get(mint)
    assert tokens.get(mint) == first and mint.calls == 1
    assert first.instance_url == "https://api.example.test"
    clock[0] += 3600 - 30  # inside the safety margin: treated as expired
    assert tokens.get(mint).value == "token-2"
    with transaction(sessions) as session:
        row = session.get(AccessTokenRow, "zoho:org-1")
        assert row.minted == 2
        assert b"token-2" not in row.ciphertext  # encrypted at rest


def test_many_workers_whose_token_was_refused_refresh_it_once(sessions, vault):
    clock = [1000.0]
    mint = Minter(clock)
    old = cache(sessions, vault, clock).get(mint)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            # Each worker has its own cache object, as separate processes would.
            results.append(cache(sessions, vault, clock).get(mint, rejected=old.value).value)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert mint.calls == 2  # the first token, and exactly one refresh
    assert results == ["token-2"] * 8


def test_a_failed_mint_releases_the_lease_and_raises(sessions, vault):
    clock = [1000.0]
    tokens = cache(sessions, vault, clock)

    def refused(rotated: str | None) -> AccessToken:
        raise ConfigurationError("refresh token revoked")

    with pytest.raises(ConfigurationError, match="revoked"):
        tokens.get(refused)
    assert tokens.get(Minter(clock)).value == "token-1"  # not stuck behind a dead lease


def test_a_token_sealed_with_a_dropped_key_is_minted_again(sessions, vault):
    clock = [1000.0]
    mint = Minter(clock)
    cache(sessions, vault, clock).get(mint)
    other = Vault(MultiFernet([Fernet(Fernet.generate_key())]))
    assert cache(sessions, other, clock).get(mint).value == "token-2"


def test_a_rotated_refresh_token_is_kept_and_used_by_the_next_mint(sessions, vault):
    clock = [1000.0]
    seen: list[str | None] = []

    def rotating(rotated: str | None) -> AccessToken:
        seen.append(rotated)
        n = len(seen)
        return AccessToken(f"token-{n}", clock[0] + 3600, None, refresh_token=f"refresh-{n}")

    first = cache(sessions, vault, clock).get(rotating)
    # Another worker (its own cache object) refreshes after a 401: it must send the refresh
    # token the first mint was given, not the connection's original one.
    cache(sessions, vault, clock).get(rotating, rejected=first.value)
    assert seen == [None, "refresh-1"]
    with transaction(sessions) as session:
        row = session.get(AccessTokenRow, "zoho:org-1")
        assert b"refresh-2" not in row.refresh_ciphertext
        assert vault.unseal(row.refresh_ciphertext) == "refresh-2"
    assert "refresh-2" not in repr(cache(sessions, vault, clock).get(rotating))
