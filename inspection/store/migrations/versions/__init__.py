"""Alembic revisions, one file each, applied in order by open_database."""
