"""Initial schema: inspections and their boxes.

Revision ID: 0001
Revises:
Create Date: 2026-05-09

A migration is a frozen snapshot: it spells out its tables instead of importing the
models, so later model changes cannot rewrite history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "inspections",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("part_id", sa.String(200), nullable=False),
        sa.Column("line_id", sa.String(100), nullable=False),
        sa.Column("camera_id", sa.String(100), nullable=False),
        sa.Column("track_id", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reasons", _JSON, nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("frame_seq", sa.BigInteger(), nullable=False),
        sa.Column("captured_at", _TS, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("evidence_sha256", sa.String(64), nullable=False),
        sa.Column("board_x1", sa.Float(), nullable=False),
        sa.Column("board_y1", sa.Float(), nullable=False),
        sa.Column("board_x2", sa.Float(), nullable=False),
        sa.Column("board_y2", sa.Float(), nullable=False),
        sa.Column("crop_width", sa.Integer(), nullable=False),
        sa.Column("crop_height", sa.Integer(), nullable=False),
        sa.Column("review_status", sa.String(16), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("reviewed_by", sa.String(200), nullable=True),
        sa.Column("reviewed_at", _TS, nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspections")),
        sa.UniqueConstraint("part_id", name=op.f("uq_inspections_part_id")),
        sa.CheckConstraint("outcome IN ('pass', 'fail', 'uncertain')", name=op.f("ck_inspections_outcome")),
        sa.CheckConstraint(
            "review_status IN ('pending', 'confirmed', 'rejected', 'corrected')",
            name=op.f("ck_inspections_review_status"),
        ),
    )
    op.create_index("ix_inspections_queue", "inspections", ["outcome", "review_status", "created_at", "id"])
    op.create_index("ix_inspections_line_created", "inspections", ["line_id", "created_at", "id"])
    op.create_index("ix_inspections_camera_created", "inspections", ["camera_id", "created_at", "id"])
    op.create_index("ix_inspections_created", "inspections", ["created_at", "id"])

    op.create_table(
        "boxes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("inspection_id", sa.String(36), nullable=False),
        sa.Column("x1", sa.Float(), nullable=False),
        sa.Column("y1", sa.Float(), nullable=False),
        sa.Column("x2", sa.Float(), nullable=False),
        sa.Column("y2", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("class_name", sa.String(100), nullable=False),
        sa.Column("source", sa.String(16), server_default=sa.text("'model'"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_boxes")),
        sa.ForeignKeyConstraint(
            ["inspection_id"], ["inspections.id"], ondelete="CASCADE", name=op.f("fk_boxes_inspection_id_inspections")
        ),
        sa.CheckConstraint("source IN ('model', 'review')", name=op.f("ck_boxes_source")),
    )
    op.create_index("ix_boxes_inspection_id", "boxes", ["inspection_id"])


def downgrade() -> None:
    op.drop_index("ix_boxes_inspection_id", table_name="boxes")
    op.drop_table("boxes")
    for name in (
        "ix_inspections_created",
        "ix_inspections_camera_created",
        "ix_inspections_line_created",
        "ix_inspections_queue",
    ):
        op.drop_index(name, table_name="inspections")
    op.drop_table("inspections")
