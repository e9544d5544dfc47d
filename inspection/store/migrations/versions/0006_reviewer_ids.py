"""Reviewers by token id: ``inspections.reviewed_by_id`` and ``review_audit.actor_id``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

A review belongs to the token that made it (its id), not to the token's name: two tokens
may carry the same name, and before this revision one could amend the other's review.
The name is still stored beside the id, for people to read.

Rows written before this revision get the id of the token whose name they carry when
exactly one token (revoked ones included) ever had that name. The others (a name several
tokens shared) keep NULL; for those, and only those, the name still decides who may
amend the review, as it did before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _backfill(table: str, id_column: str, name_column: str) -> None:
    """Set ``id_column`` to the token id of ``name_column`` where exactly one token has that name."""
    op.execute(
        sa.text(
            f"UPDATE {table} SET {id_column} = "
            f"(SELECT MIN(t.id) FROM api_tokens t WHERE t.name = {table}.{name_column}) "
            f"WHERE {name_column} IS NOT NULL "
            f"AND (SELECT COUNT(*) FROM api_tokens t WHERE t.name = {table}.{name_column}) = 1"
        )
    )


def upgrade() -> None:
    op.add_column("inspections", sa.Column("reviewed_by_id", sa.String(16), nullable=True))
    op.add_column("review_audit", sa.Column("actor_id", sa.String(16), nullable=True))
    _backfill("inspections", "reviewed_by_id", "reviewed_by")
    _backfill("review_audit", "actor_id", "actor")


def downgrade() -> None:
    with op.batch_alter_table("review_audit") as batch:
        batch.drop_column("actor_id")
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("reviewed_by_id")
