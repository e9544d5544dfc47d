"""Alembic environment: runs on the connection that open_database hands over.

Developers can also point the alembic CLI here (``script_location`` = this folder and
``sqlalchemy.url`` set); then a throwaway engine is built from that URL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from inspection.store.models import Base


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    # open_database makes SQLAlchemy emit BEGIN itself, so DDL on SQLite is transactional too
    context.configure(
        connection=connection, target_metadata=Base.metadata, render_as_batch=sqlite, transactional_ddl=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection handed over and no sqlalchemy.url configured")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


run_migrations_online()
