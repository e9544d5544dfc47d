"""QA review: audit table, rejected boxes, the risk queue's columns, indexes for the queue and stats.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

- ``review_audit``: one row per review action (who, role, when, before, after, comment);
- ``boxes.rejected``: a box the reviewer marked as a false positive (kept, never deleted);
- ``inspections.max_confidence`` (highest confidence of the boxes not rejected, 0 without
  boxes) and ``inspections.risk_rank`` (0 uncertain, 1 fail, 2 pass): the review queue's
  order, backfilled here from the boxes and outcomes already stored;
- covering indexes for the risk queue and the stats aggregates.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_INDEXES = {
    "ix_inspections_risk": ("inspections", ["risk_rank", "max_confidence", "created_at", "id"]),
    "ix_inspections_status_risk": ("inspections", ["review_status", "risk_rank", "max_confidence", "created_at", "id"]),
    "ix_inspections_stats": ("inspections", ["created_at", "outcome", "review_status"]),
    "ix_inspections_line_stats": ("inspections", ["line_id", "created_at", "outcome", "review_status"]),
    "ix_boxes_pareto": ("boxes", ["inspection_id", "rejected", "class_name"]),
}


def upgrade() -> None:
    op.add_column("inspections", sa.Column("max_confidence", sa.Float(), server_default=sa.text("0"), nullable=False))
    op.add_column("inspections", sa.Column("risk_rank", sa.SmallInteger(), server_default=sa.text("2"), nullable=False))
    op.add_column("boxes", sa.Column("rejected", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute(
        "UPDATE inspections SET max_confidence = COALESCE("
        "(SELECT MAX(b.confidence) FROM boxes b WHERE b.inspection_id = inspections.id), 0)"
    )
    op.execute("UPDATE inspections SET risk_rank = CASE outcome WHEN 'uncertain' THEN 0 WHEN 'fail' THEN 1 ELSE 2 END")
    for name, (table, columns) in _INDEXES.items():
        op.create_index(name, table, columns)
    op.create_table(
        "review_audit",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("inspection_id", sa.String(36), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("before", _JSON, nullable=False),
        sa.Column("after", _JSON, nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_audit")),
        sa.ForeignKeyConstraint(
            ["inspection_id"],
            ["inspections.id"],
            ondelete="CASCADE",
            name=op.f("fk_review_audit_inspection_id_inspections"),
        ),
        sa.CheckConstraint(
            "action IN ('confirm', 'reject', 'relabel', 'add_box', 'comment')", name=op.f("ck_review_audit_action")
        ),
    )
    op.create_index("ix_review_audit_inspection", "review_audit", ["inspection_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_review_audit_inspection", table_name="review_audit")
    op.drop_table("review_audit")
    for name, (table, _) in _INDEXES.items():
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("boxes") as batch:
        batch.drop_column("rejected")
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("risk_rank")
        batch.drop_column("max_confidence")
