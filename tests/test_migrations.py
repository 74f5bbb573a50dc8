"""The Alembic history builds exactly the schema the models declare, on every database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from sync.db import make_engine
from sync.models import Base


def test_migrations_match_the_models(database_url):
    engine = make_engine(database_url)  # the fixture has already run every migration
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
