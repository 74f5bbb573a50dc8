"""Shared fixtures: a fresh state store per test on SQLite, and on PostgreSQL/Redis when the
environment names them (CI does: this machine's local services). Without them those
parametrisations skip with the reason shown in the summary (-ra)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings

from sync import migrate
from sync.db import make_engine, make_session_factory

# Hypothesis' per-example deadline is a timer asserted in every property test: on a loaded CI
# machine a first, cold call fails it and the test is reported flaky. Speed is for bench/.
settings.register_profile("tandem", deadline=None)
settings.load_profile("tandem")

POSTGRES_URL = os.environ.get("TANDEM_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("TANDEM_TEST_REDIS_URL")


def _postgres_database() -> Iterator[str]:
    """A throwaway database on the test server, dropped afterwards."""
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured: set TANDEM_TEST_POSTGRES_URL (CI does)")
    import psycopg

    name = f"tandem_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at TANDEM_TEST_POSTGRES_URL unreachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> Iterator[str]:
    """A migrated, empty state store."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tandem.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
        return
    for url in _postgres_database():
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("Redis not configured: set TANDEM_TEST_REDIS_URL (CI does)")
    return REDIS_URL


def add_connection(sessions, account: str = "a.myshopify.com") -> int:
    """A Shopify -> HubSpot connection row (no credentials); returns its id."""
    from sync.db import transaction
    from sync.models import Connection

    with transaction(sessions) as session:
        connection = Connection(
            name=account,
            store_platform="shopify",
            store_account=account,
            crm_platform="hubspot",
            crm_account="1",
        )
        session.add(connection)
        session.flush()
        return connection.id
