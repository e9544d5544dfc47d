"""Event log, per-line sequence counters, forwarder cursors and twin snapshots (sync package).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_OFFSET = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("offset", _OFFSET, autoincrement=False, nullable=False),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("line_id", sa.String(100), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("time", sa.String(40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("offset", name=op.f("pk_events")),
        sa.UniqueConstraint("id", name="uq_events_id"),
        sa.UniqueConstraint("line_id", "sequence", name="uq_events_line_id"),
    )
    op.create_index("ix_events_type", "events", ["type", "offset"])
    op.create_table(
        "event_lines",
        sa.Column("line_id", sa.String(100), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("line_id", name=op.f("pk_event_lines")),
    )
    op.create_table(
        "sync_cursors",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_cursors")),
    )
    op.create_table(
        "twin_snapshots",
        sa.Column("line_id", sa.String(100), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("line_id", "revision", name=op.f("pk_twin_snapshots")),
    )


def downgrade() -> None:
    op.drop_table("twin_snapshots")
    op.drop_table("sync_cursors")
    op.drop_table("event_lines")
    op.drop_index("ix_events_type", table_name="events")
    op.drop_table("events")
