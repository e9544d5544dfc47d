"""Request and response models of the QA API (inspections, reviews, stats, models).

Kept apart from the storage values (inspection/store/records.py): ``summary``, ``detail``
and ``audit_out`` turn those into what the API promises, so storage can change without
changing the contract.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from inspection.qa.review import ReviewAction, box_json
from inspection.qa.wording import current_reasons, describe
from inspection.reference.align import ALIGNMENT_FAILED
from inspection.store import AuditEntry, StoredInspection

Verdict = Literal["pass", "fail", "uncertain"]
ReviewStatusName = Literal["pending", "confirmed", "rejected", "corrected"]
Coord = Annotated[float, Field(allow_inf_nan=False)]


class ModelRef(BaseModel):
    name: str
    version: str


class Information(BaseModel):
    score: float = Field(
        description="Expected information of a review, 0 to 2: the active model's uncertainty (1 when its top "
        "box sits at the fail threshold) plus 1 when the shadow model's verdict differs."
    )
    why: list[str] = Field(description="What the score is made of, in words.")


class InspectionSummary(BaseModel):
    id: str
    part_id: str
    line_id: str
    camera_id: str
    verdict: Verdict = Field(description="The current verdict (after review).")
    review_status: ReviewStatusName
    captured_at: datetime
    created_at: datetime
    max_confidence: float = Field(description="Highest confidence of the boxes not rejected; 0 without boxes.")
    defect_classes: list[str] = Field(description="Sorted unique classes of the boxes not rejected.")
    model: ModelRef
    thumbnail_url: str
    evidence_url: str
    version: int = Field(description="Bumped by every review; send it back in a review to detect stale views.")
    recipe: str | None = Field(
        None,
        description="The recipe (product) the board was compared with; null for an inspection without a golden image.",
    )
    information: Information | None = Field(
        None, description="sort=information only: why this board is worth reviewing now; null otherwise."
    )


class InspectionPage(BaseModel):
    items: list[InspectionSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` (same filters and sort) for the next page.")


class BoxOut(BaseModel):
    id: int
    xyxy: list[float] = Field(description="x1, y1, x2, y2 in crop pixels.")
    confidence: float
    class_name: str
    source: Literal["model", "review"]
    rejected: bool


class CropSize(BaseModel):
    width: int
    height: int


class ReviewState(BaseModel):
    status: ReviewStatusName
    by: str | None = Field(description="Name of the token that reviewed it.")
    by_token_id: str | None = Field(
        None,
        description="Id of that token: whose review it is (two tokens may share "
        "a name); null for older reviews under a shared name.",
    )
    at: datetime | None


class AuditOut(BaseModel):
    at: datetime
    actor: str = Field(description="Name of the token that acted.")
    actor_id: str | None = Field(
        None,
        description="Id of the token that acted (tokens may share a name); null for older entries under a shared name.",
    )
    role: str
    action: str
    before: dict[str, Any]
    after: dict[str, Any]
    comment: str | None
    summary: str = Field("", description="Who did what, in words (e.g. 'alice (qa) confirmed the verdict').")
    id: int | None = Field(None, description="The entry's id (an undo names the id it took back in after.undid).")


class InspectionDetail(InspectionSummary):
    boxes: list[BoxOut]
    reasons: list[str] = Field(description="The model's reasons when it made its verdict, as stored.")
    current_reasons: list[str] = Field(
        default_factory=list,
        description="The reasons as they are now, after any review, in words: each defect box still "
        "standing by class and place on the board, the model's reasons no box stands for, the review's decision.",
    )
    model_verdict: Verdict | None = Field(None, description="The verdict the model made (before any review).")
    corrected: bool = Field(
        False, description="The final verdict differs from the model's: what stats and the twin count as corrected."
    )
    board_box: list[float] = Field(description="Where the crop was taken in the frame, x1, y1, x2, y2 pixels.")
    frame_seq: int
    crop: CropSize
    review: ReviewState
    class_names: list[str] = Field(description="The defect classes, in model order (keys 1-6 in the UI).")
    audit: list[AuditOut]
    golden_sha256: str | None = Field(None, description="sha256 of the golden image the board was compared with.")
    golden_url: str | None = Field(None, description="/api/v1/goldens/{sha256}: the golden image; null without one.")
    alignment_score: float | None = Field(
        None, description="How well the board aligned to its golden (1 = identical); null when not measured."
    )
    golden_aligned: bool | None = Field(
        None,
        description="true: the evidence is the board registered to the golden "
        "(same pixels, boxes included); false: alignment failed and the evidence is "
        "the raw crop; null without a golden.",
    )


class ReviewBody(BaseModel):
    """One review action; fields an action does not use must be left out."""

    model_config = ConfigDict(extra="forbid")

    action: ReviewAction
    version: int | None = Field(None, description="The version you reviewed; a stale one answers 409.")
    box_id: int | None = Field(None, description="relabel (required), reject (optional: only this box).")
    class_name: str | None = Field(None, max_length=100, description="relabel, add_box: one of class_names.")
    xyxy: list[Coord] | None = Field(
        None, min_length=4, max_length=4, description="add_box: x1, y1, x2, y2 inside the crop, in crop pixels."
    )
    comment: str | None = Field(None, max_length=2000, description="comment (required); optional on the others.")


class BulkItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=100)
    version: int | None = Field(None, description="The version you saw; a stale one skips this board.")


class BulkReviewBody(BaseModel):
    """One action on a selection of boards: one request, one transaction, one audit entry per board."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["confirm", "reject"]
    items: list[BulkItemIn] = Field(min_length=1, max_length=500)
    comment: str | None = Field(None, max_length=2000, description="Kept in every board's audit entry.")


class BulkDone(BaseModel):
    id: str
    verdict: Verdict
    review_status: ReviewStatusName
    version: int


class BulkSkipped(BaseModel):
    id: str
    reason: str


class BulkReviewOut(BaseModel):
    reviewed: list[BulkDone]
    skipped: list[BulkSkipped] = Field(description="Boards left as they were, each with the reason.")


class CountOut(BaseModel):
    total: int = Field(description="Inspections the filters select.")


class ConflictOut(BaseModel):
    detail: str
    error: str
    current: InspectionDetail


class Counts(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    pass_: int = Field(alias="pass")
    fail: int
    uncertain: int


class ParetoItem(BaseModel):
    class_name: str
    count: int = Field(description="Boxes of this class not rejected by a reviewer.")
    share: float
    cumulative: float


class TrendItem(BaseModel):
    start: datetime
    inspected: int
    pass_: int = Field(alias="pass")
    fail: int
    uncertain: int
    yield_: float | None = Field(alias="yield")
    running_seconds: float = Field(
        0.0, description="Time the line ran in this bucket: gaps of at most idle_gap_seconds ending in it."
    )
    throughput_per_hour: float | None = Field(
        None, description="Boards per hour of running time in this bucket; null when the line ran no measurable time."
    )


class StatsOut(BaseModel):
    counts: Counts
    inspected: int
    yield_: float | None = Field(alias="yield", description="pass / inspected; null when nothing was inspected.")
    throughput_per_hour: float | None = Field(
        description="Boards per hour over the time the line ran (not the whole window): the gaps between "
        "consecutive inspections of at most idle_gap_seconds, each the time of the board that ends it. "
        "Null when the line ran no measurable time (no inspection, or none within idle_gap_seconds of another)."
    )
    running_seconds: float = Field(description="Time the line ran in the selection (see throughput_per_hour).")
    idle_gap_seconds: float = Field(description="A longer gap between two inspections is a stop, not running time.")
    bucket: Literal["minute", "hour", "day"] = Field(description="The trend's bucket (what `auto` chose).")
    pareto: list[ParetoItem]
    trend: list[TrendItem]
    reviewed: int = Field(description="Inspections with a review status other than pending.")
    corrected: int = Field(
        description="Inspections whose final verdict differs from the model's (the twin counts the same)."
    )


class ModelOut(BaseModel):
    role: str
    name: str
    version: str
    path: str
    card: dict[str, Any] | None = Field(description="card.json of the registered model; null for a bare file.")


class ModelsOut(BaseModel):
    models: list[ModelOut]


# -- storage values -> API models -----------------------------------------------------------------


def summary_fields(item: StoredInspection) -> dict[str, Any]:
    base = f"/api/v1/inspections/{item.id}"
    return {
        "id": item.id,
        "part_id": item.part_id,
        "line_id": item.line_id,
        "camera_id": item.camera_id,
        "verdict": item.outcome.value,
        "review_status": item.review_status.value,
        "captured_at": item.captured_at,
        "created_at": item.created_at,
        "max_confidence": item.max_confidence,
        "defect_classes": list(item.defect_classes),
        "model": ModelRef(name=item.model_name, version=item.model_version),
        "thumbnail_url": f"{base}/evidence.jpg?size=160",
        "evidence_url": f"{base}/evidence.jpg",
        "version": item.version,
        "recipe": item.recipe,
    }


def summary(item: StoredInspection, information: Information | None = None) -> InspectionSummary:
    return InspectionSummary(**summary_fields(item), information=information)


def audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        id=entry.id,
        summary=describe(entry),
        at=entry.at,
        actor=entry.actor,
        actor_id=entry.actor_id,
        role=entry.role,
        action=entry.action,
        before=entry.before,
        after=entry.after,
        comment=entry.comment,
    )


def golden_fields(item: StoredInspection) -> dict[str, Any]:
    """The golden image a reference inspection was compared with, and whether the pair lines up."""
    sha = item.golden_sha256
    return {
        "golden_sha256": sha,
        "golden_url": f"/api/v1/goldens/{sha}" if sha else None,
        "alignment_score": item.alignment_score,
        "golden_aligned": None if sha is None else not any(ALIGNMENT_FAILED in r for r in item.reasons),
    }


def detail(item: StoredInspection, audit: tuple[AuditEntry, ...], class_names: tuple[str, ...]) -> InspectionDetail:
    return InspectionDetail(
        **summary_fields(item),
        boxes=[BoxOut(**box_json(b)) for b in item.boxes],
        reasons=list(item.reasons),
        current_reasons=current_reasons(item),
        model_verdict=item.model_verdict.value,
        corrected=item.corrected,
        board_box=list(item.board_xyxy),
        frame_seq=item.frame_seq,
        crop=CropSize(width=item.crop_width, height=item.crop_height),
        review=ReviewState(
            status=item.review_status.value, by=item.reviewed_by, by_token_id=item.reviewed_by_id, at=item.reviewed_at
        ),
        class_names=list(class_names),
        audit=[audit_out(e) for e in audit],
        **golden_fields(item),
    )
