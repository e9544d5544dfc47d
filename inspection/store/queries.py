"""What ``InspectionStore.list`` selects and in which order: filters, sort orders, keyset cursors.

Two orders, each a total order ending in the primary key, so keyset pagination never
skips or repeats a row:

- ``newest``: ``created_at desc, id desc``;
- ``risk`` (the review queue): ``risk_rank`` (uncertain 0, fail 1, pass 2), then
  ``max_confidence`` ascending (the least sure first), then ``created_at desc, id desc``.

A cursor names the last row handed out (its sort key, base64url JSON); the next page is
"strictly after it" in the same order. Each order has an index that serves its first
page and every later one as a range scan (see models.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, literal, or_, select, tuple_
from sqlalchemy.sql.elements import UnaryExpression

from inspection.core.outcome import Outcome
from inspection.store.errors import InvalidCursorError
from inspection.store.models import RISK_RANK, BoxRow, InspectionRow
from inspection.store.records import InspectionFilter, ReviewStatus, SortOrder, StoredInspection

_RISK_TAG = "risk"


def conditions(flt: InspectionFilter | None) -> list[ColumnElement[bool]]:
    """WHERE terms of a filter (all must hold)."""
    if flt is None:
        return []
    col = InspectionRow
    conds: list[ColumnElement[bool]] = []
    if flt.outcome is not None:
        conds.append(col.outcome == Outcome(flt.outcome).value)
    if flt.outcomes is not None:
        conds.append(col.outcome.in_([Outcome(o).value for o in flt.outcomes]))
    if flt.part_id_contains:
        pattern = flt.part_id_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conds.append(col.part_id.like(f"%{pattern}%", escape="\\"))
    if flt.review_status is not None:
        conds.append(col.review_status == ReviewStatus(flt.review_status).value)
    if flt.line_id is not None:
        conds.append(col.line_id == flt.line_id)
    if flt.camera_id is not None:
        conds.append(col.camera_id == flt.camera_id)
    if flt.created_from is not None:
        conds.append(col.created_at >= flt.created_from)
    if flt.created_before is not None:
        conds.append(col.created_at < flt.created_before)
    if flt.defect_class is not None:
        conds.append(
            exists(
                select(literal(1)).where(
                    BoxRow.inspection_id == col.id, BoxRow.rejected.is_(False), BoxRow.class_name == flt.defect_class
                )
            )
        )
    return conds


def order_by(sort: SortOrder) -> list[UnaryExpression[Any] | Any]:
    col = InspectionRow
    newest = [col.created_at.desc(), col.id.desc()]
    if sort is SortOrder.RISK:
        return [col.risk_rank.asc(), col.max_confidence.asc(), *newest]
    return newest


def _b64(value: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def encode_cursor(item: StoredInspection, sort: SortOrder = SortOrder.NEWEST) -> str:
    """The cursor naming ``item`` as the last row of a page in ``sort`` order."""
    stamp = item.created_at.astimezone(UTC).isoformat()
    if sort is SortOrder.RISK:
        return _b64([_RISK_TAG, RISK_RANK[item.outcome.value], item.max_confidence, stamp, item.id])
    return _b64([stamp, item.id])


def _stamp(value: Any) -> datetime:
    created_at = datetime.fromisoformat(value)
    if created_at.tzinfo is None:
        raise ValueError("naive time")
    return created_at.astimezone(UTC)  # OverflowError for times UTC cannot hold


def decode_cursor(cursor: str, sort: SortOrder = SortOrder.NEWEST) -> tuple[Any, ...]:
    """The sort key in a cursor: (created_at, id), or (rank, max_confidence, created_at, id) for risk."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list):
            raise ValueError("not a list")
        if sort is SortOrder.RISK:
            tag, rank, confidence, stamp, inspection_id = raw
            ok = (
                tag == _RISK_TAG
                and rank in (0, 1, 2)
                and type(rank) is int
                and isinstance(confidence, int | float)
                and math.isfinite(confidence)
                and isinstance(inspection_id, str)
            )
            if not ok:
                raise ValueError("not a risk cursor")
            return rank, float(confidence), _stamp(stamp), inspection_id
        stamp, inspection_id = raw
        if not isinstance(inspection_id, str):
            raise ValueError("non-string id")
        return _stamp(stamp), inspection_id
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, OverflowError) as error:
        raise InvalidCursorError(f"not a sort={sort.value} cursor this store handed out: {cursor[:80]!r}") from error


def after(cursor: str, sort: SortOrder = SortOrder.NEWEST) -> ColumnElement[bool]:
    """Rows strictly after the cursor in ``sort`` order."""
    col = InspectionRow
    if sort is SortOrder.RISK:
        rank, confidence, created_at, inspection_id = decode_cursor(cursor, sort)
        head, key = tuple_(col.risk_rank, col.max_confidence), tuple_(literal(rank), literal(confidence))
        same_head = and_(col.risk_rank == rank, col.max_confidence == confidence)
        newer_tail = or_(col.created_at < created_at, and_(col.created_at == created_at, col.id < inspection_id))
        # the first term is implied by the second; it lets the planner start the index scan at the cursor
        return and_(head >= key, or_(head > key, and_(same_head, newer_tail)))
    created_at, inspection_id = decode_cursor(cursor, sort)
    return or_(col.created_at < created_at, and_(col.created_at == created_at, col.id < inspection_id))
