"""Reviewing many boards in one request: the queue's selection confirmed (or rejected) at line rate.

``run_bulk`` reads every board of the selection in one query, plans each review with
``plan_review`` (the same rules as one board at a time, one audit entry per board), and commits
all the plans that hold in ONE transaction (with their ``review.corrected`` events, when the
caller's ``commit`` puts them on the event log). A board someone else reviewed, a stale version
or an unknown id is skipped with its reason; the others go through. When a board changes
between the read and the write, the whole selection is planned again on what is there now.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection

from inspection.qa.review import (
    InvalidReview,
    ReviewAction,
    ReviewConflict,
    Reviewer,
    ReviewPlan,
    ReviewRequest,
    plan_review,
)
from inspection.store import ConcurrentUpdate, InspectionStore

MAX_BULK = 500  # boards in one request (a shift's queue at ~1,500 boards/hour fits several times)
BULK_ACTIONS = (ReviewAction.CONFIRM, ReviewAction.REJECT)

CommitMany = Callable[[Sequence[ReviewPlan], Callable[[Connection], None]], None]


@dataclass(frozen=True)
class BulkItem:
    inspection_id: str
    version: int | None = None  # the version the reviewer saw; None: do not check


@dataclass(frozen=True)
class BulkResult:
    done: tuple[ReviewPlan, ...]
    skipped: tuple[tuple[str, str], ...]  # (inspection id, why)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def plan_bulk(
    store: InspectionStore,
    items: Sequence[BulkItem],
    action: ReviewAction,
    reviewer: Reviewer,
    class_names: Sequence[str],
    at: datetime,
    comment: str | None = None,
) -> BulkResult:
    """Plan every item (unique ids, in the given order); what cannot be done is skipped with its reason."""
    found = store.get_many([it.inspection_id for it in items])
    done: list[ReviewPlan] = []
    skipped: list[tuple[str, str]] = []
    for item in items:
        current = found.get(item.inspection_id)
        if current is None:
            skipped.append((item.inspection_id, f"no inspection with id {item.inspection_id!r}"))
            continue
        request = ReviewRequest(action=action, version=item.version, comment=comment)
        try:
            done.append(plan_review(current, request, reviewer, class_names, at))
        except (InvalidReview, ReviewConflict) as error:
            skipped.append((item.inspection_id, str(error)))
    return BulkResult(tuple(done), tuple(skipped))


def run_bulk(
    store: InspectionStore,
    items: Sequence[BulkItem],
    action: ReviewAction,
    reviewer: Reviewer,
    class_names: Sequence[str],
    commit: CommitMany,
    *,
    comment: str | None = None,
    clock: Callable[[], datetime] = _utc_now,
    attempts: int = 3,
) -> BulkResult:
    """Plan and commit a selection in one transaction; ``commit(plans, write)`` runs ``write`` in it."""
    if action not in BULK_ACTIONS:
        raise InvalidReview(
            f"action {action.value!r}: a selection can be confirmed or rejected, one board at a time else"
        )
    unique = list({it.inspection_id: it for it in items}.values())
    if not unique:
        raise InvalidReview("items: select at least one board")
    if len(unique) > MAX_BULK:
        raise InvalidReview(f"items: at most {MAX_BULK} boards in one request, got {len(unique)}")
    for _ in range(attempts):
        result = plan_bulk(store, unique, action, reviewer, class_names, clock(), comment)
        writers = [store.review_writer(plan.change) for plan in result.done]

        def write(conn: Connection, writers: list[Callable[[Connection], None]] = writers) -> None:
            for one in writers:
                one(conn)

        try:
            if result.done:
                commit(result.done, write)
            return result
        except ConcurrentUpdate:
            continue  # a board changed in between: plan the selection again
    raise ReviewConflict("the selection kept changing while it was reviewed; try again", unique[0].inspection_id)
