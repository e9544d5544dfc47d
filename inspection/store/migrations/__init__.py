"""Alembic migration scripts of the inspection store; run by inspection.store.db.open_database."""
