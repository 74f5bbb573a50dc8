"""Engine and sessions for the state store: SQLite (WAL) by default, PostgreSQL when scaled out.

SQLite facts this module relies on (https://sqlite.org/wal.html, https://sqlite.org/lang_transaction.html):
- WAL lets readers run beside the single writer; every process must be on the same host.
- A deferred transaction that later tries to write gets SQLITE_BUSY at once, ignoring
  busy_timeout; starting every transaction with BEGIN IMMEDIATE takes the write lock up front,
  so concurrent writers queue on busy_timeout instead of failing.
- Python's sqlite3 driver issues its own BEGIN lazily; SQLAlchemy documents taking that over with
  engine events (https://docs.sqlalchemy.org/en/20/dialects/sqlite.html, "Serializable isolation").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str) -> Engine:
    """Create the state-store engine for ``url`` (``sqlite:///path`` or ``postgresql://...``).

    Raises ValueError for a database this store does not support.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            # psycopg 3 is the driver we ship (the `postgres` extra); name it explicitly so a
            # plain postgresql:// URL does not go looking for psycopg2.
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Take BEGIN over from the driver (see module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # NORMAL is durable across application crashes in WAL mode; only an OS crash or power
        # loss can roll back the last transactions (https://sqlite.org/pragma.html#pragma_synchronous).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (rows are handed to workers)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with factory() as session, session.begin():
        yield session
