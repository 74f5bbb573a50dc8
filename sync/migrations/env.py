"""Alembic environment. Run through ``flask db upgrade`` (see sync.migrate), never by hand-edited URLs."""

from __future__ import annotations

from alembic import context

from sync.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through sync.migrate.upgrade(), which passes a connection")

# Batch mode rebuilds tables on SQLite (which cannot ALTER most things) and emits plain ALTER
# on PostgreSQL, so one history serves both (https://alembic.sqlalchemy.org/en/latest/batch.html).
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
