"""Schema migrations (Alembic) run programmatically, so ``flask db upgrade`` needs no alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(engine: Engine, connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the state store to ``revision`` (idempotent)."""
    with engine.begin() as connection:
        command.upgrade(_config(engine, connection), revision)


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a migration from the models (a developer tool; review what it writes)."""
    with engine.begin() as connection:
        command.revision(_config(engine, connection), message=message, autogenerate=True)
