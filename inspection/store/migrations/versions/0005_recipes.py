"""Recipes (products) with golden images; the golden-reference fields of each inspection.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

- ``recipes``: one row per product: the sha256 of its golden image file (the bytes live in
  the content-addressed ``goldens`` folder of the data dir), its size, ignore masks and
  alignment settings (JSON), description, who created and last replaced it, when;
- ``inspections.recipe``, ``inspections.golden_sha256``, ``inspections.alignment_score``:
  which golden a board was compared with and how well it aligned (NULL for inspections
  made without a golden, all of those stored before this revision included).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "recipes",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("golden_sha256", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("masks", _JSON, nullable=False),
        sa.Column("align", _JSON, nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_recipes")),
        sa.CheckConstraint("width > 0 AND height > 0", name=op.f("ck_recipes_size")),
    )
    op.add_column("inspections", sa.Column("recipe", sa.String(100), nullable=True))
    op.add_column("inspections", sa.Column("golden_sha256", sa.String(64), nullable=True))
    op.add_column("inspections", sa.Column("alignment_score", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("alignment_score")
        batch.drop_column("golden_sha256")
        batch.drop_column("recipe")
    op.drop_table("recipes")
