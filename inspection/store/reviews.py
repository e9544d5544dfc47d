"""The database side of a QA review: apply a ``ReviewChange`` in a transaction someone owns, read the audit.

``review_writer(change)`` returns a callable that does every write of one review on a
connection (the event log's outbox transaction, or the store's own): it re-reads the
inspection's version under the write lock and raises ``ConcurrentUpdate`` when it is not
the version the change was planned on, so a review never lands on a state its planner
did not see. What the change means is decided in inspection/qa/review.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from inspection.core.outcome import Outcome
from inspection.store.errors import InspectionNotFoundError, StoreError
from inspection.store.models import RISK_RANK, AuditRow, BoxRow, InspectionRow
from inspection.store.records import AuditEntry, BoxRecord, ReviewStatus


class ConcurrentUpdate(StoreError):
    """The inspection changed between the read a review was planned on and its write."""


@dataclass(frozen=True)
class AuditDraft:
    """The audit row of one review (the ids of added boxes are filled in when they are inserted)."""

    at: datetime
    actor: str
    role: str
    action: str
    before: dict[str, Any]
    after: dict[str, Any]
    comment: str | None
    actor_id: str | None = None  # the token's id (actor is its name)


@dataclass(frozen=True)
class ReviewChange:
    """Every write of one review. ``update_row`` False: an audit-only action (a comment)."""

    inspection_id: str
    expected_version: int
    audit: AuditDraft
    update_row: bool = True
    outcome: Outcome = Outcome.PASS
    review_status: ReviewStatus = ReviewStatus.PENDING
    reviewed_by: str | None = None
    reviewed_by_id: str | None = None
    reviewed_at: datetime | None = None
    max_confidence: float = 0.0
    reject_box_ids: tuple[int, ...] = ()
    relabel: tuple[tuple[int, str], ...] = ()  # (box id, new class)
    add_boxes: tuple[BoxRecord, ...] = ()
    restore_boxes: tuple[tuple[int, bool, str], ...] = ()  # undo: (box id, rejected, class) as they were
    delete_box_ids: tuple[int, ...] = ()  # undo of add_box: the boxes a reviewer drew
    reopen: bool = False  # every model box as the model made it, every box a reviewer drew deleted
    corrected: bool = False  # the final verdict differs from the model's (inspection.core.outcome.is_correction)


def _box_values(inspection_id: str, box: BoxRecord) -> dict[str, Any]:
    return {
        "inspection_id": inspection_id,
        "x1": box.x1,
        "y1": box.y1,
        "x2": box.x2,
        "y2": box.y2,
        "confidence": box.confidence,
        "class_name": box.class_name,
        "source": box.source.value,
        "rejected": box.rejected,
    }


def _check_version(conn: Connection, change: ReviewChange) -> None:
    query = select(InspectionRow.version).where(InspectionRow.id == change.inspection_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    version = conn.execute(query).scalar()
    if version is None:
        raise InspectionNotFoundError(f"no inspection with id {change.inspection_id!r}")
    if version != change.expected_version:
        raise ConcurrentUpdate(
            f"inspection {change.inspection_id!r} is at version {version}, "
            f"the review was planned on {change.expected_version}"
        )


def _write_boxes(conn: Connection, change: ReviewChange) -> list[int]:
    ident = change.inspection_id
    if change.reject_box_ids:
        conn.execute(
            update(BoxRow)
            .where(BoxRow.inspection_id == ident, BoxRow.id.in_(change.reject_box_ids))
            .values(rejected=True)
        )
    for box_id, class_name in change.relabel:
        conn.execute(
            update(BoxRow).where(BoxRow.inspection_id == ident, BoxRow.id == box_id).values(class_name=class_name)
        )
    for box_id, rejected, class_name in change.restore_boxes:
        conn.execute(
            update(BoxRow)
            .where(BoxRow.inspection_id == ident, BoxRow.id == box_id)
            .values(rejected=rejected, class_name=class_name)
        )
    if change.delete_box_ids:
        conn.execute(delete(BoxRow).where(BoxRow.inspection_id == ident, BoxRow.id.in_(change.delete_box_ids)))
    if change.reopen:
        conn.execute(delete(BoxRow).where(BoxRow.inspection_id == ident, BoxRow.source == "review"))
        conn.execute(
            update(BoxRow)
            .where(BoxRow.inspection_id == ident)
            .values(rejected=False, class_name=func.coalesce(BoxRow.model_class_name, BoxRow.class_name))
        )
    added = []
    for box in change.add_boxes:
        key = conn.execute(insert(BoxRow).values(**_box_values(ident, box))).inserted_primary_key
        assert key is not None
        added.append(int(key[0]))
    return added


def _with_added_ids(after: dict[str, Any], added: list[int]) -> dict[str, Any]:
    ids = iter(added)
    boxes = [{**b, "id": next(ids)} if b.get("id") is None else b for b in after.get("boxes", [])]
    return {**after, "boxes": boxes} if "boxes" in after else after


def review_writer(change: ReviewChange) -> Callable[[Connection], None]:
    """The writes of ``change`` on a connection inside someone's transaction."""

    def write(conn: Connection) -> None:
        _check_version(conn, change)
        added = _write_boxes(conn, change)
        if change.update_row:
            done = conn.execute(
                update(InspectionRow)
                .where(InspectionRow.id == change.inspection_id, InspectionRow.version == change.expected_version)
                .values(
                    outcome=change.outcome.value,
                    risk_rank=RISK_RANK[change.outcome.value],
                    review_status=change.review_status.value,
                    reviewed_by=change.reviewed_by,
                    reviewed_by_id=change.reviewed_by_id,
                    reviewed_at=change.reviewed_at,
                    max_confidence=change.max_confidence,
                    corrected=change.corrected,
                    version=change.expected_version + 1,
                )
            )
            if done.rowcount != 1:
                raise ConcurrentUpdate(f"inspection {change.inspection_id!r} changed while it was reviewed")
        audit = replace(change.audit, after=_with_added_ids(change.audit.after, added))
        conn.execute(
            insert(AuditRow).values(
                inspection_id=change.inspection_id,
                at=audit.at,
                actor=audit.actor,
                actor_id=audit.actor_id,
                role=audit.role,
                action=audit.action,
                before=audit.before,
                after=audit.after,
                comment=audit.comment,
            )
        )

    return write


def read_audit(conn: Connection, inspection_id: str) -> tuple[AuditEntry, ...]:
    """The audit trail of one inspection, oldest first."""
    table = AuditRow.__table__
    rows = conn.execute(select(table).where(table.c.inspection_id == inspection_id).order_by(table.c.id)).all()
    return tuple(
        AuditEntry(
            r.id, r.inspection_id, r.at, r.actor, r.role, r.action, dict(r.before), dict(r.after), r.comment, r.actor_id
        )
        for r in rows
    )
