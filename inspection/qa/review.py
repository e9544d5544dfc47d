"""QA review: what each action does to an inspection, as a pure function, and the read-plan-write loop.

``plan_review(current, request, reviewer, class_names, at)`` checks a request against the
inspection as read and returns a ``ReviewPlan``: the verdict before and after, the boxes
after, and the ``ReviewChange`` (every write, with its audit row) for the store. It never
touches the database, so every rule below is tested without one.

- ``confirm``: the verdict is right (status ``confirmed``); an ``uncertain`` part is
  resolved: ``fail`` when it has boxes that are not rejected, else ``pass``;
- ``reject``: a false positive (status ``rejected``): every live box is marked rejected and
  the verdict becomes ``pass``. With ``box_id``, only that box is rejected; if other live
  boxes remain the verdict stays and the status is ``corrected``;
- ``relabel``: a box's class changes (status ``corrected``, verdict ``fail``: the reviewer
  names a defect); the old class stays in the audit entry;
- ``add_box``: a missed defect, in crop pixels (status ``corrected``, verdict ``fail``);
- ``comment``: an audit entry only; never conflicts;
- ``undo``: takes back the reviewer's own last action on the board (``u`` in the UI): verdict,
  status, reviewer and the boxes it touched are as they were before it, boxes it drew are
  deleted. Undo again takes back the action before that. Only the token that acted may undo
  it; a reopen is not undone (review the board again);
- ``reopen``: the board is pending again with the model's verdict and boxes (classes as the
  model gave them, boxes a reviewer drew deleted), audited, its ``review.corrected`` event
  lets the twin follow back.

Who may change a reviewed board (the rule): the token that reviewed it, or a lead (a token of
role ``admin``); anyone else gets a ``ReviewConflict`` with the current state, and may comment.
A request naming a version that is not the current one is a ``ReviewConflict`` too.

Every plan says whether the board is *corrected* after it (``inspection.core.outcome.is_correction``:
the final verdict differs from the model's); the store keeps it and the event carries it, so
stats, the dashboard and the twin count the same boards. A reviewer is the token, by its id: two tokens that
share a name are two reviewers (the name is kept beside the id, for people). Only a review
recorded without an id (before migration 0006, under a name several tokens shared) or a
reviewer without a token falls back to the name. ``run_review`` re-reads and re-plans when the row
changed between the read and the write (``ConcurrentUpdate``), so a plan always lands on
the state it was made from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection

from inspection.core.errors import InspectionError
from inspection.core.outcome import Outcome, is_correction
from inspection.store import (
    AuditDraft,
    AuditEntry,
    BoxRecord,
    BoxSource,
    ConcurrentUpdate,
    InspectionStore,
    ReviewChange,
    ReviewStatus,
    StoredInspection,
)

MAX_COMMENT = 2000
LEAD_ROLE = "admin"
REVIEW_BOX_CONFIDENCE = 1.0  # a box a reviewer drew is certain


class ReviewError(InspectionError):
    """Base of the review errors."""


class InvalidReview(ReviewError):
    """A request that does not fit its action or the inspection (unknown box or class, box outside the crop)."""


class ReviewConflict(ReviewError):
    """Someone else reviewed the inspection already, or the request names a version that is not current."""

    def __init__(self, message: str, inspection_id: str, current: Any = None) -> None:
        super().__init__(message)
        self.inspection_id = inspection_id
        self.current = current  # the current state, as the API renders it

    def with_current(self, current: Any) -> ReviewConflict:
        return ReviewConflict(str(self), self.inspection_id, current)


class ReviewAction(StrEnum):
    CONFIRM = "confirm"
    REJECT = "reject"
    RELABEL = "relabel"
    ADD_BOX = "add_box"
    COMMENT = "comment"
    UNDO = "undo"
    REOPEN = "reopen"


@dataclass(frozen=True)
class ReviewRequest:
    action: ReviewAction
    version: int | None = None  # the version the reviewer saw; None: do not check
    box_id: int | None = None
    class_name: str | None = None
    xyxy: tuple[float, float, float, float] | None = None
    comment: str | None = None


@dataclass(frozen=True)
class Reviewer:
    name: str  # the token's name (what people read)
    role: str
    token_id: str | None = None  # the token's id (who it is); None: a reviewer without a token

    @property
    def lead(self) -> bool:
        """A QA lead (a token of role admin) may amend or reopen anyone's review."""
        return self.role == LEAD_ROLE

    def made(self, item: StoredInspection) -> bool:
        """Whether ``item``'s current review is this reviewer's (by token id; by name only when an id is missing)."""
        if item.reviewed_by_id is not None and self.token_id is not None:
            return item.reviewed_by_id == self.token_id
        return item.reviewed_by == self.name


@dataclass(frozen=True)
class ReviewPlan:
    inspection: StoredInspection  # as read
    action: ReviewAction
    reviewer: Reviewer
    before: Outcome
    after: Outcome
    boxes_after: tuple[BoxRecord, ...]  # every box after the review (rejected ones included)
    change: ReviewChange

    @property
    def verdict_changed(self) -> bool:
        return self.before != self.after

    @property
    def corrected(self) -> bool:
        """After this review, the final verdict differs from the model's."""
        return self.change.corrected

    @property
    def was_corrected(self) -> bool:
        return self.inspection.corrected


# -- checks ---------------------------------------------------------------------------------------

_FIELDS = {
    ReviewAction.CONFIRM: (set(), set()),
    ReviewAction.REJECT: (set(), {"box_id"}),
    ReviewAction.RELABEL: ({"box_id", "class_name"}, set()),
    ReviewAction.ADD_BOX: ({"class_name", "xyxy"}, set()),
    ReviewAction.COMMENT: ({"comment"}, set()),
    ReviewAction.UNDO: (set(), set()),
    ReviewAction.REOPEN: (set(), set()),
}


def _check_fields(request: ReviewRequest) -> None:
    required, optional = _FIELDS[request.action]
    given = {name for name in ("box_id", "class_name", "xyxy") if getattr(request, name) is not None}
    if request.comment is not None and request.comment.strip():
        given.add("comment")
    missing, extra = sorted(required - given), sorted(given - required - optional - {"comment"})
    if missing:
        raise InvalidReview(f"action {request.action.value!r} needs {', '.join(missing)}")
    if extra:
        raise InvalidReview(f"action {request.action.value!r} takes no {', '.join(extra)}")
    if request.comment is not None and len(request.comment) > MAX_COMMENT:
        raise InvalidReview(f"comment: at most {MAX_COMMENT} characters, got {len(request.comment)}")


def _check_conflict(current: StoredInspection, request: ReviewRequest, reviewer: Reviewer) -> None:
    if request.action is ReviewAction.COMMENT:
        return
    if current.review_status is not ReviewStatus.PENDING and not reviewer.made(current) and not reviewer.lead:
        at = current.reviewed_at.isoformat() if current.reviewed_at else "an unknown time"
        token = f" (token {current.reviewed_by_id})" if current.reviewed_by_id else ""
        raise ReviewConflict(
            f"inspection {current.id!r} was already reviewed by {current.reviewed_by!r}{token} "
            f"({current.review_status.value}, at {at}); only that token or a lead may amend it",
            current.id,
        )
    if request.version is not None and request.version != current.version:
        raise ReviewConflict(
            f"inspection {current.id!r} changed since you read it (you saw version "
            f"{request.version}, it is now {current.version}); reload and review again",
            current.id,
        )


def _live_box(current: StoredInspection, box_id: int | None) -> BoxRecord:
    box = next((b for b in current.boxes if b.id == box_id), None)
    if box is None:
        known = ", ".join(str(b.id) for b in current.boxes) or "none"
        raise InvalidReview(f"box_id {box_id}: not a box of inspection {current.id!r} (its boxes: {known})")
    if box.rejected:
        raise InvalidReview(f"box_id {box_id} was rejected already")
    return box


def _known_class(class_name: str | None, class_names: Sequence[str]) -> str:
    if class_name is None or class_name not in class_names:
        raise InvalidReview(f"class_name {class_name!r}: not a defect class (classes: {', '.join(class_names)})")
    return class_name


def _new_box(current: StoredInspection, xyxy: Sequence[float] | None, class_name: str) -> BoxRecord:
    if xyxy is None or len(xyxy) != 4 or not all(isinstance(v, int | float) and math.isfinite(v) for v in xyxy):
        raise InvalidReview(f"xyxy: four finite numbers x1, y1, x2, y2 in crop pixels, got {xyxy!r}")
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    w, h = current.crop_width, current.crop_height
    if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
        raise InvalidReview(f"xyxy {[x1, y1, x2, y2]}: must lie inside the {w}x{h} crop with x1 < x2 and y1 < y2")
    return BoxRecord(x1, y1, x2, y2, REVIEW_BOX_CONFIDENCE, class_name, BoxSource.REVIEW)


# -- the actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Effect:
    after: Outcome
    status: ReviewStatus
    boxes_after: tuple[BoxRecord, ...]
    rejected: tuple[int, ...] = ()
    relabel: tuple[tuple[int, str], ...] = ()
    added: tuple[BoxRecord, ...] = ()
    touched: tuple[BoxRecord, ...] = ()  # the boxes before the change (for the audit)
    restored: tuple[tuple[int, bool, str], ...] = ()  # undo: (box id, rejected, class)
    deleted: tuple[int, ...] = ()  # undo of add_box
    reopen: bool = False
    by: tuple[str | None, str | None] | None = None  # undo / reopen: the reviewer after it (None: the requester)
    reviewed_at: datetime | None = None
    undid: int | None = None  # undo: the audit id of the action taken back


def _rejected(boxes: tuple[BoxRecord, ...], ids: set[int | None]) -> tuple[BoxRecord, ...]:
    return tuple(
        BoxRecord(b.x1, b.y1, b.x2, b.y2, b.confidence, b.class_name, b.source, True, b.id) if b.id in ids else b
        for b in boxes
    )


def _reject(current: StoredInspection, request: ReviewRequest) -> _Effect:
    targets = [_live_box(current, request.box_id)] if request.box_id is not None else list(current.live_boxes)
    ids = {b.id for b in targets}
    boxes = _rejected(current.boxes, ids)
    remaining = any(not b.rejected for b in boxes)
    after = current.outcome if remaining else Outcome.PASS
    status = ReviewStatus.CORRECTED if remaining else ReviewStatus.REJECTED
    return _Effect(after, status, boxes, rejected=tuple(int(i) for i in ids if i is not None), touched=tuple(targets))


def _effect(
    current: StoredInspection,
    request: ReviewRequest,
    class_names: Sequence[str],
    history: Sequence[AuditEntry],
    reviewer: Reviewer,
) -> _Effect:
    action = request.action
    if action is ReviewAction.UNDO:
        return _undo(current, history, reviewer)
    if action is ReviewAction.REOPEN:
        return _reopen(current)
    if action is ReviewAction.CONFIRM:
        after = current.outcome
        if after is Outcome.UNCERTAIN:
            after = Outcome.FAIL if current.live_boxes else Outcome.PASS
        return _Effect(after, ReviewStatus.CONFIRMED, current.boxes)
    if action is ReviewAction.REJECT:
        return _reject(current, request)
    if action is ReviewAction.RELABEL:
        box = _live_box(current, request.box_id)
        name = _known_class(request.class_name, class_names)
        if name == box.class_name:
            raise InvalidReview(f"box_id {box.id} is already {name!r}")
        boxes = tuple(
            BoxRecord(b.x1, b.y1, b.x2, b.y2, b.confidence, name, b.source, b.rejected, b.id) if b.id == box.id else b
            for b in current.boxes
        )
        return _Effect(Outcome.FAIL, ReviewStatus.CORRECTED, boxes, relabel=((int(box.id or 0), name),), touched=(box,))
    if action is ReviewAction.ADD_BOX:
        new = _new_box(current, request.xyxy, _known_class(request.class_name, class_names))
        return _Effect(Outcome.FAIL, ReviewStatus.CORRECTED, (*current.boxes, new), added=(new,))
    return _Effect(current.outcome, current.review_status, current.boxes)  # comment


def _undone(history: Sequence[AuditEntry]) -> set[int]:
    return {int(e.after["undid"]) for e in history if e.action == ReviewAction.UNDO.value and "undid" in e.after}


def undo_target(history: Sequence[AuditEntry]) -> AuditEntry | None:
    """The action an undo takes back: the newest one that changed the board and is not undone yet."""
    undone = _undone(history)
    changes = (ReviewAction.COMMENT.value, ReviewAction.UNDO.value)
    return next((e for e in reversed(history) if e.action not in changes and e.id not in undone), None)


def _undo(current: StoredInspection, history: Sequence[AuditEntry], reviewer: Reviewer) -> _Effect:
    target = undo_target(history)
    if target is None:
        raise InvalidReview(f"inspection {current.id!r}: no review action to undo")
    mine = (
        target.actor_id == reviewer.token_id if target.actor_id and reviewer.token_id else target.actor == reviewer.name
    )
    if not mine:
        raise ReviewConflict(
            f"inspection {current.id!r}: its last action ({target.action}) is {target.actor!r}'s; "
            "only that token may undo it (a lead may reopen the board)",
            current.id,
        )
    if target.action == ReviewAction.REOPEN.value:
        raise InvalidReview(f"inspection {current.id!r}: a reopen is not undone; review the board again")
    before, after = target.before, target.after
    by_id = {b.id: b for b in current.boxes}
    restored = tuple(
        (int(b["id"]), bool(b["rejected"]), str(b["class_name"]))
        for b in before.get("boxes", [])
        if b.get("id") in by_id
    )
    drawn = {int(b["id"]) for b in after.get("boxes", []) if b.get("source") == "review" and b.get("id") is not None}
    drawn -= {i for i, _, _ in restored}
    was = {i: (rejected, name) for i, rejected, name in restored}
    boxes = tuple(
        replace(b, rejected=was[b.id][0], class_name=was[b.id][1]) if b.id in was else b
        for b in current.boxes
        if b.id not in drawn
    )
    status = ReviewStatus(before.get("review_status", ReviewStatus.PENDING.value))
    at = before.get("reviewed_at")
    return _Effect(
        Outcome(before.get("verdict", current.outcome.value)),
        status,
        boxes,
        touched=tuple(b for b in current.boxes if b.id in drawn or b.id in was),
        restored=restored,
        deleted=tuple(sorted(drawn)),
        by=(before.get("reviewed_by"), before.get("reviewed_by_id")),
        reviewed_at=None
        if status is ReviewStatus.PENDING
        else (datetime.fromisoformat(at) if at else current.reviewed_at),
        undid=target.id,
    )


def _reopen(current: StoredInspection) -> _Effect:
    if current.review_status is ReviewStatus.PENDING:
        raise InvalidReview(f"inspection {current.id!r} is pending already: nothing to reopen")
    boxes = tuple(
        replace(b, class_name=b.model_class_name or b.class_name, rejected=False)
        for b in current.boxes
        if b.source is BoxSource.MODEL
    )
    return _Effect(
        current.model_verdict, ReviewStatus.PENDING, boxes, touched=current.boxes, reopen=True, by=(None, None)
    )


def box_json(box: BoxRecord) -> dict[str, Any]:
    return {
        "id": box.id,
        "xyxy": list(box.xyxy),
        "confidence": box.confidence,
        "class_name": box.class_name,
        "source": box.source.value,
        "rejected": box.rejected,
    }


def _snapshot(
    outcome: Outcome,
    status: ReviewStatus,
    by: tuple[str | None, str | None],
    boxes: Sequence[BoxRecord],
    at: datetime | None,
) -> dict[str, Any]:
    return {
        "verdict": outcome.value,
        "review_status": status.value,
        "reviewed_by": by[0],
        "reviewed_by_id": by[1],
        "reviewed_at": at.isoformat() if at else None,
        "boxes": [box_json(b) for b in boxes],
    }


def plan_review(
    current: StoredInspection,
    request: ReviewRequest,
    reviewer: Reviewer,
    class_names: Sequence[str],
    at: datetime,
    history: Sequence[AuditEntry] = (),
) -> ReviewPlan:
    """What ``request`` does to ``current`` (``history``: its audit, oldest first, for undo); raises
    InvalidReview or ReviewConflict, changes nothing."""
    _check_fields(request)
    if request.action is not ReviewAction.UNDO:  # an undo checks whose action it takes back
        _check_conflict(current, request, reviewer)
    elif request.version is not None and request.version != current.version:
        raise ReviewConflict(f"inspection {current.id!r} changed since you read it; reload and undo again", current.id)
    effect = _effect(current, request, class_names, history, reviewer)
    comment = request.comment.strip() if request.comment and request.comment.strip() else None
    is_comment = request.action is ReviewAction.COMMENT
    was = (current.reviewed_by, current.reviewed_by_id)
    by = was if is_comment else effect.by if effect.by is not None else (reviewer.name, reviewer.token_id)
    reviewed_at = current.reviewed_at if is_comment else effect.reviewed_at if effect.by is not None else at
    changed_ids = {b.id for b in effect.touched}
    after_boxes = [b for b in effect.boxes_after if b.id in changed_ids] + list(effect.added)
    after = _snapshot(effect.after, effect.status, by, after_boxes, reviewed_at)
    if effect.undid is not None:
        after["undid"] = effect.undid
    corrected = effect.status is not ReviewStatus.PENDING and is_correction(current.model_verdict, effect.after)
    audit = AuditDraft(
        at=at,
        actor=reviewer.name,
        actor_id=reviewer.token_id,
        role=reviewer.role,
        action=request.action.value,
        before=_snapshot(current.outcome, current.review_status, was, effect.touched, current.reviewed_at),
        after=after,
        comment=comment,
    )
    live = [b.confidence for b in effect.boxes_after if not b.rejected]
    change = ReviewChange(
        inspection_id=current.id,
        expected_version=current.version,
        audit=audit,
        update_row=not is_comment,
        outcome=effect.after,
        review_status=effect.status,
        reviewed_by=by[0],
        reviewed_by_id=by[1],
        reviewed_at=reviewed_at,
        max_confidence=max(live, default=0.0),
        reject_box_ids=effect.rejected,
        relabel=effect.relabel,
        add_boxes=effect.added,
        restore_boxes=effect.restored,
        delete_box_ids=effect.deleted,
        reopen=effect.reopen,
        corrected=corrected if not is_comment else current.corrected,
    )
    return ReviewPlan(current, request.action, reviewer, current.outcome, effect.after, effect.boxes_after, change)


Commit = Callable[[ReviewPlan, Callable[[Connection], None]], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def run_review(
    store: InspectionStore,
    inspection_id: str,
    request: ReviewRequest,
    reviewer: Reviewer,
    class_names: Sequence[str],
    commit: Commit,
    *,
    clock: Callable[[], datetime] = _utc_now,
    attempts: int = 3,
) -> ReviewPlan:
    """Read, plan and commit a review; ``commit(plan, write)`` runs ``write`` in one transaction.

    ``commit`` decides which transaction: the event log's (with the event of a verdict change,
    made by sync.drafts) or the store's own (``store.apply_review``).
    """
    for _ in range(attempts):
        history = store.audit(inspection_id) if request.action is ReviewAction.UNDO else ()
        plan = plan_review(store.get(inspection_id), request, reviewer, class_names, clock(), history)
        try:
            commit(plan, store.review_writer(plan.change))
            return plan
        except ConcurrentUpdate:
            continue  # someone wrote in between: plan again on what is there now
    raise ReviewConflict(f"inspection {inspection_id!r} kept changing while it was reviewed; try again", inspection_id)
