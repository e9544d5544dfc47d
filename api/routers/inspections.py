"""Stored inspections: list (filters, three sort orders, cursor pages), detail, evidence, audit, review.

Reading needs the ``qa`` or ``ml`` role; reviewing needs ``qa`` (``admin`` passes both).
A review that changes the verdict commits its writes together with a ``review.corrected``
event on the event log (one transaction: the outbox), so the twin follows it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from api.auth import require
from api.errors import InvalidQuery, NotFound
from api.review_order import information_page
from api.schemas_qa import (
    AuditOut,
    BulkDone,
    BulkReviewBody,
    BulkReviewOut,
    BulkSkipped,
    ConflictOut,
    CountOut,
    Information,
    InspectionDetail,
    InspectionPage,
    ReviewBody,
    ReviewStatusName,
    Verdict,
    audit_out,
    detail,
    summary,
)
from api.services import Services
from api.thumbnails import thumbnail
from api.tokens import Principal, Role
from inspection.core.classes import DEEPPCB_CLASSES
from inspection.core.outcome import Outcome
from inspection.qa.bulk import BulkItem, CommitMany, run_bulk
from inspection.qa.review import (
    Commit,
    ReviewAction,
    ReviewConflict,
    Reviewer,
    ReviewPlan,
    ReviewRequest,
    run_review,
)
from inspection.store import InspectionFilter, InspectionStore, ReviewStatus
from sync.drafts import review_corrected

router = APIRouter(prefix="/api/v1/inspections", tags=["inspections"])
readers = [Depends(require(Role.QA, Role.ML))]
Reviewing = Annotated[Principal, Depends(require(Role.QA))]

Line = Annotated[str | None, Query(max_length=100, description="Only this line.")]
Since = Annotated[datetime | None, Query(alias="from", description="Stored at or after (ISO 8601; naive = UTC).")]
Until = Annotated[datetime | None, Query(alias="to", description="Stored before (ISO 8601; naive = UTC).")]


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def inspection_store(request: Request) -> InspectionStore:
    store = services(request).inspections
    if store is None:
        raise NotFound("this process stores no inspections")
    return store


def class_names(request: Request) -> tuple[str, ...]:
    return services(request).class_names or DEEPPCB_CLASSES


def utc(value: datetime | None) -> datetime | None:
    """A query time in UTC; a naive one is read as UTC."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidQuery(f"{value.isoformat()}: outside the times that can be stored (years 1-9999 UTC)") from None


def query_filter(
    line: Line = None,
    camera: Annotated[str | None, Query(max_length=100, description="Only this camera.")] = None,
    verdict: Annotated[
        list[Verdict] | None,
        Query(
            description="Only these (current) verdicts; repeat it: verdict=fail&verdict=uncertain is the "
            "default review queue, what needs a human."
        ),
    ] = None,
    defect_class: Annotated[str | None, Query(max_length=100, description="Has a live box of this class.")] = None,
    review_status: Annotated[ReviewStatusName | None, Query(description="Only this review status.")] = None,
    part: Annotated[str | None, Query(max_length=200, description="The part id contains this text.")] = None,
    since: Since = None,
    until: Until = None,
) -> InspectionFilter:
    verdicts = tuple(dict.fromkeys(Outcome(v) for v in verdict or ()))
    return InspectionFilter(
        outcome=verdicts[0] if len(verdicts) == 1 else None,
        outcomes=verdicts if len(verdicts) > 1 else None,
        review_status=ReviewStatus(review_status) if review_status else None,
        line_id=line,
        camera_id=camera,
        created_from=utc(since),
        created_before=utc(until),
        defect_class=defect_class,
        part_id_contains=part.strip() if part and part.strip() else None,
    )


Filters = Annotated[InspectionFilter, Depends(query_filter)]


@router.get(
    "",
    response_model=InspectionPage,
    dependencies=readers,
    summary="Stored inspections, filtered; sort=risk is the review queue",
)
def list_inspections(
    request: Request,
    flt: Filters,
    sort: Annotated[
        Literal["newest", "risk", "information"],
        Query(
            description="newest: newest first. risk: uncertain, then fail, then pass; the least confident "
            "first; then newest. information: the boards not reviewed yet of the line this process runs, "
            "most informative to review first (model uncertainty, disagreement with the shadow model; "
            "each item says why), then newest; 422 where no line runs."
        ),
    ] = "newest",
    cursor: Annotated[str | None, Query(max_length=500, description="next_cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> InspectionPage:
    store = inspection_store(request)
    if sort == "information":
        ranked, next_cursor = information_page(services(request).model_desk, store, flt, cursor, limit)
        items = [summary(item, Information(score=b["score"], why=b["why"])) for item, b in ranked]
        return InspectionPage(items=items, next_cursor=next_cursor)
    page = store.list(flt, cursor=cursor, limit=limit, sort=sort)
    return InspectionPage(items=[summary(item) for item in page.items], next_cursor=page.next_cursor)


@router.get(
    "/count",
    response_model=CountOut,
    dependencies=readers,
    summary="How many inspections the filters select (the queue's total pending)",
)
def count_inspections(request: Request, flt: Filters) -> CountOut:
    return CountOut(total=inspection_store(request).count(flt))


def load_detail(request: Request, inspection_id: str) -> InspectionDetail:
    store = inspection_store(request)
    item = store.get(inspection_id)
    return detail(item, store.audit(inspection_id), class_names(request))


@router.get(
    "/{inspection_id}",
    response_model=InspectionDetail,
    dependencies=readers,
    summary="One inspection: boxes, reasons, review state, audit trail, its golden image if any",
)
def get_inspection(inspection_id: str, request: Request) -> InspectionDetail:
    return load_detail(request, inspection_id)


@router.get(
    "/{inspection_id}/evidence.jpg",
    dependencies=readers,
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
    summary="The evidence crop (size: longest side in pixels, for thumbnails)",
)
def evidence(
    inspection_id: str,
    request: Request,
    size: Annotated[int | None, Query(ge=16, le=2048, description="Longest side in pixels.")] = None,
) -> Response:
    store = inspection_store(request)
    sha = store.get(inspection_id).evidence_sha256
    data = store.evidence.get(sha) if size is None else thumbnail(sha, size, lambda: store.evidence.get(sha))
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


@router.get(
    "/{inspection_id}/audit",
    response_model=list[AuditOut],
    dependencies=readers,
    summary="Every review action on an inspection, oldest first",
)
def audit(inspection_id: str, request: Request) -> list[AuditOut]:
    store = inspection_store(request)
    store.get(inspection_id)  # 404 for an unknown id
    return [audit_out(e) for e in store.audit(inspection_id)]


def _committer(request: Request, store: InspectionStore) -> Commit:
    sync = services(request).sync if services(request).review_events else None

    def commit(plan: ReviewPlan, write: Callable[[Connection], None]) -> None:
        if sync is None or not plan.verdict_changed:
            store.apply_review(plan.change)
            return
        sync.log.append([review_corrected(plan, sync.settings.edge_id)], extra=write)

    return commit


def _bulk_committer(request: Request, store: InspectionStore) -> CommitMany:
    sync = services(request).sync if services(request).review_events else None

    def commit(plans: Sequence[ReviewPlan], write: Callable[[Connection], None]) -> None:
        changed = [p for p in plans if p.verdict_changed]
        if sync is None or not changed:
            store.apply_writes(write)
            return
        sync.log.append([review_corrected(p, sync.settings.edge_id) for p in changed], extra=write)

    return commit


@router.post(
    "/bulk-review",
    response_model=BulkReviewOut,
    responses={422: {"description": "Not confirm or reject, no board, more than 500 boards"}},
    summary="Confirm or reject a selection of boards in one request (one transaction, one audit entry per board)",
)
def bulk_review(body: BulkReviewBody, request: Request, principal: Reviewing) -> BulkReviewOut:
    store = inspection_store(request)
    result = run_bulk(
        store,
        [BulkItem(it.id, it.version) for it in body.items],
        ReviewAction(body.action),
        Reviewer(principal.name, principal.role.value, principal.token_id),
        class_names(request),
        _bulk_committer(request, store),
        comment=body.comment,
    )
    return BulkReviewOut(
        reviewed=[
            BulkDone(
                id=p.inspection.id,
                verdict=p.after.value,
                review_status=p.change.review_status.value,
                version=p.inspection.version + 1,
            )
            for p in result.done
        ],
        skipped=[BulkSkipped(id=i, reason=why) for i, why in result.skipped],
    )


@router.post(
    "/{inspection_id}/review",
    response_model=InspectionDetail,
    responses={
        409: {"model": ConflictOut, "description": "Reviewed by someone else, or a stale version"},
        422: {"description": "Unknown box or class, box outside the crop, missing field"},
    },
    summary="Review: confirm, reject (false positive), relabel a box, add a missed box, comment, undo, reopen",
)
def review(inspection_id: str, body: ReviewBody, request: Request, principal: Reviewing) -> InspectionDetail:
    store = inspection_store(request)
    req = ReviewRequest(
        action=body.action,
        version=body.version,
        box_id=body.box_id,
        class_name=body.class_name,
        xyxy=tuple(body.xyxy) if body.xyxy is not None else None,  # type: ignore[arg-type]
        comment=body.comment,
    )
    try:
        run_review(
            store,
            inspection_id,
            req,
            Reviewer(principal.name, principal.role.value, principal.token_id),
            class_names(request),
            _committer(request, store),
        )
    except ReviewConflict as conflict:
        current = load_detail(request, inspection_id).model_dump(mode="json")
        raise conflict.with_current(current) from None
    return load_detail(request, inspection_id)
