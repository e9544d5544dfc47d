"""Corrections defined once, undo and reopen: the model's own verdict and classes are kept beside the reviewed ones.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

- ``inspections.model_outcome``: the verdict the model made (``outcome`` is the current one,
  after review). A reopened inspection gets it back.
- ``inspections.corrected``: whether the final verdict differs from the model's, the one
  definition of a correction (``inspection.core.outcome.is_correction``), written with every
  review; stats count it, the twin counts the same from ``review.corrected`` events.
- ``boxes.model_class_name``: the class the model gave a box (NULL for a box a reviewer drew),
  so a reopen restores relabelled boxes.
- ``review_audit.action`` also takes ``undo`` and ``reopen``.

Rows written before: ``model_outcome`` is the ``before`` verdict of the inspection's first
review action that changed something (else its current verdict); a box's model class is
the ``before`` class of its first relabel (else its current class).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD_ACTIONS = ("confirm", "reject", "relabel", "add_box", "comment")
NEW_ACTIONS = (*OLD_ACTIONS, "undo", "reopen")


def _check(actions: tuple[str, ...]) -> str:
    return f"action IN ({', '.join(repr(a) for a in actions)})"


def _first_befores(conn: sa.Connection) -> tuple[dict[str, str], dict[int, str]]:
    """From the audit, oldest first: each inspection's first 'before' verdict, each box's first 'before' class."""
    audit = sa.table(
        "review_audit", sa.column("id"), sa.column("inspection_id"), sa.column("action"), sa.column("before", sa.JSON)
    )
    verdicts: dict[str, str] = {}
    classes: dict[int, str] = {}
    rows = conn.execute(
        sa.select(audit.c.inspection_id, audit.c.action, audit.c.before)
        .where(audit.c.action != "comment")
        .order_by(audit.c.id)
    )
    for inspection_id, action, before in rows:
        snapshot: dict[str, Any] = before if isinstance(before, dict) else {}
        if "verdict" in snapshot:
            verdicts.setdefault(inspection_id, str(snapshot["verdict"]))
        if action == "relabel":
            for box in snapshot.get("boxes", []):
                if box.get("id") is not None:
                    classes.setdefault(int(box["id"]), str(box["class_name"]))
    return verdicts, classes


def upgrade() -> None:
    op.add_column("inspections", sa.Column("model_outcome", sa.String(16), nullable=True))
    op.add_column("inspections", sa.Column("corrected", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("boxes", sa.Column("model_class_name", sa.String(100), nullable=True))
    conn = op.get_bind()
    op.execute("UPDATE inspections SET model_outcome = outcome")
    op.execute("UPDATE boxes SET model_class_name = class_name WHERE source = 'model'")
    verdicts, classes = _first_befores(conn)
    inspections = sa.table("inspections", sa.column("id"), sa.column("model_outcome"))
    boxes = sa.table("boxes", sa.column("id"), sa.column("model_class_name"))
    for inspection_id, verdict in verdicts.items():
        conn.execute(sa.update(inspections).where(inspections.c.id == inspection_id).values(model_outcome=verdict))
    for box_id, name in classes.items():
        conn.execute(sa.update(boxes).where(boxes.c.id == box_id).values(model_class_name=name))
    op.execute(
        "UPDATE inspections SET corrected = CASE WHEN review_status != 'pending' AND outcome != model_outcome "
        "THEN 1 ELSE 0 END"
        if conn.dialect.name == "sqlite"
        else "UPDATE inspections SET corrected = (review_status != 'pending' AND outcome != model_outcome)"
    )
    with op.batch_alter_table("review_audit") as batch:
        batch.drop_constraint(op.f("ck_review_audit_action"), type_="check")
        batch.create_check_constraint(op.f("ck_review_audit_action"), _check(NEW_ACTIONS))


def downgrade() -> None:
    op.execute(f"DELETE FROM review_audit WHERE action NOT IN ({', '.join(repr(a) for a in OLD_ACTIONS)})")
    with op.batch_alter_table("review_audit") as batch:
        batch.drop_constraint(op.f("ck_review_audit_action"), type_="check")
        batch.create_check_constraint(op.f("ck_review_audit_action"), _check(OLD_ACTIONS))
    with op.batch_alter_table("boxes") as batch:
        batch.drop_column("model_class_name")
    with op.batch_alter_table("inspections") as batch:
        batch.drop_column("corrected")
        batch.drop_column("model_outcome")
