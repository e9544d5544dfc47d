"""Model delivery: each model version's state per line, the history of changes, the promotion lock, shadow verdicts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

- ``model_versions``: (line, name, version) -> role and state (registered, shadow, active, retired);
- ``model_changes``: every activation, rollback, shadow start / stop and registration of a line:
  who, when, why, from which version, forced or not, the gate's figures; ``announced`` once its
  event is in the line's stream;
- ``model_locks``: one promotion per line at a time;
- ``shadow_verdicts``: what a shadow model said about each board it saw, apart from ``inspections``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)
STATES = ("registered", "shadow", "active", "retired")
ACTIONS = ("registered", "shadow_started", "shadow_stopped", "activated", "rolled_back")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("line_id", sa.String(100), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("line_id", "name", "version", name=op.f("pk_model_versions")),
        sa.CheckConstraint(_in("state", STATES), name=op.f("ck_model_versions_state")),
    )
    op.create_table(
        "model_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("line_id", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("previous", sa.String(120), nullable=True),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("detail", _JSON, nullable=False),
        sa.Column("announced", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_changes")),
        sa.CheckConstraint(_in("action", ACTIONS), name=op.f("ck_model_changes_action")),
    )
    op.create_index("ix_model_changes_line", "model_changes", ["line_id", "id"])
    op.create_table(
        "model_locks",
        sa.Column("line_id", sa.String(100), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("since", _TS, nullable=False),
        sa.PrimaryKeyConstraint("line_id", name=op.f("pk_model_locks")),
    )
    op.create_table(
        "shadow_verdicts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("line_id", sa.String(100), nullable=False),
        sa.Column("part_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("boxes", _JSON, nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_verdicts")),
    )
    op.create_index("ix_shadow_verdicts_line", "shadow_verdicts", ["line_id", "name", "version", "id"])
    op.create_index("ix_shadow_verdicts_part", "shadow_verdicts", ["part_id"])


def downgrade() -> None:
    op.drop_index("ix_shadow_verdicts_part", table_name="shadow_verdicts")
    op.drop_index("ix_shadow_verdicts_line", table_name="shadow_verdicts")
    op.drop_table("shadow_verdicts")
    op.drop_table("model_locks")
    op.drop_index("ix_model_changes_line", table_name="model_changes")
    op.drop_table("model_changes")
    op.drop_table("model_versions")
