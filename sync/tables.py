"""Storage of the sync package: the event log, per-line counters, cursors, twin snapshots.

Declared on the inspection store's metadata, so one Alembic history (migration 0002)
creates them in the same database as the inspections: a verdict and its
``part.inspected`` event commit in one transaction (the outbox).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, UniqueConstraint

from inspection.store.models import Base

Offset = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid on SQLite

events = Table(
    "events",
    Base.metadata,
    Column("offset", Offset, primary_key=True, autoincrement=False),
    Column("id", String(36), nullable=False),
    Column("line_id", String(100), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("type", String(40), nullable=False),
    Column("time", String(40), nullable=False),
    Column("body", Text, nullable=False),
    UniqueConstraint("id", name="uq_events_id"),
    UniqueConstraint("line_id", "sequence", name="uq_events_line_id"),
    Index("ix_events_type", "type", "offset"),
)

event_lines = Table(
    "event_lines",
    Base.metadata,
    Column("line_id", String(100), primary_key=True),
    Column("last_sequence", BigInteger, nullable=False),
)

sync_cursors = Table(
    "sync_cursors",
    Base.metadata,
    Column("name", String(200), primary_key=True),
    Column("offset", BigInteger, nullable=False),
)

twin_snapshots = Table(
    "twin_snapshots",
    Base.metadata,
    Column("line_id", String(100), primary_key=True),
    Column("revision", BigInteger, primary_key=True),
    Column("state", Text, nullable=False),
)
