"""The review queue by expected information: ``GET /api/v1/inspections?sort=information``.

The line's model desk ranks the boards not reviewed yet (``ModelDesk.review_order``:
the active model's uncertainty at the line's fail threshold, plus disagreement with the
shadow model; see inspection.store.information) with the queue's other filters applied in
the same query; ties go newest first. Every unreviewed board of the line is ranked (the
database computes the score). A page is a keyset range of that ranking; its cursor names
the last board handed out by its sort key (score, created_at, id), so boards reviewed or
stored meanwhile never make a page repeat or skip one still ranked.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from api.errors import InvalidQuery
from api.model_desk import ModelDesk
from inspection.store import InspectionFilter, InspectionStore, ReviewStatus, StoredInspection
from inspection.store.errors import InvalidCursorError
from inspection.store.information import Place

_TAG = "information"


def encode(place: Place) -> str:
    raw = [_TAG, place.score, place.created_at.astimezone(UTC).isoformat(), place.inspection_id]
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")


def decode(cursor: str) -> Place:
    """The place a cursor names (InvalidCursorError when it is not one this order handed out)."""
    try:
        tag, score, stamp, inspection_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        ok = tag == _TAG and isinstance(score, int | float) and math.isfinite(score) and isinstance(inspection_id, str)
        when = datetime.fromisoformat(stamp)
        if not ok or when.tzinfo is None:
            raise ValueError("not an information cursor")
        return Place(float(score), when.astimezone(UTC), inspection_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, OverflowError) as error:
        raise InvalidCursorError(f"not a sort=information cursor this service handed out: {cursor[:80]!r}") from error


def _place(board: dict[str, Any]) -> Place:
    return Place(float(board["score"]), board["created_at"], str(board["inspection_id"]))


def information_page(
    desk: ModelDesk | None, store: InspectionStore, flt: InspectionFilter, cursor: str | None, limit: int
) -> tuple[list[tuple[StoredInspection, dict[str, Any]]], str | None]:
    """One page of the boards ``flt`` selects, most informative first: (inspection, its ranking), next cursor."""
    if desk is None:
        raise InvalidQuery("sort=information: this process runs no inspection line, so no model ranks its boards")
    if flt.line_id not in (None, desk.line_id):
        raise InvalidQuery(
            f"sort=information ranks the boards of line {desk.line_id!r} (this process's), not {flt.line_id!r}"
        )
    if flt.review_status not in (None, ReviewStatus.PENDING):
        raise InvalidQuery("sort=information ranks the boards not reviewed yet: review_status must be pending")
    last = decode(cursor) if cursor else None
    page = desk.review_order(limit + 1, replace(flt, line_id=None, review_status=None), after=last)
    found = store.get_many([b["inspection_id"] for b in page[:limit]])
    items = [(found[b["inspection_id"]], b) for b in page[:limit] if b["inspection_id"] in found]
    return items, encode(_place(page[limit - 1])) if len(page) > limit else None
