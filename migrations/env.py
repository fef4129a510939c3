"""Alembic environment.

The store builds the Alembic ``Config`` in Python (:func:`planner_core.store.migrate.alembic_config`)
and passes an open connection in ``config.attributes["connection"]``; run from the command line
(``alembic upgrade head`` with the repository's ``alembic.ini``) the URL comes from
``PLANNER_DB_URL`` or ``sqlalchemy.url``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from planner_core.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return os.environ.get("PLANNER_DB_URL") or config.get_main_option("sqlalchemy.url") or "sqlite:///planner.db"


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url())
    with engine.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
