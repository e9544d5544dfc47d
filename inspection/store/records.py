"""Values that go into and come out of the inspection store (never ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from inspection.core.outcome import Outcome


class ReviewStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    CORRECTED = "corrected"


class BoxSource(StrEnum):
    MODEL = "model"
    REVIEW = "review"


class SortOrder(StrEnum):
    NEWEST = "newest"  # created_at desc, id desc
    RISK = "risk"  # uncertain, fail, pass; then lowest max confidence; then newest


@dataclass(frozen=True)
class BoxRecord:
    """One defect box in crop pixels; ``id`` is set on boxes read back from the store."""

    x1: float
    y1: float
    x2: float
    y2: float
    confidence: float
    class_name: str
    source: BoxSource = BoxSource.MODEL
    rejected: bool = False  # a reviewer marked it a false positive (kept for the audit trail)
    id: int | None = field(default=None, compare=False)
    model_class_name: str | None = field(default=None, compare=False)  # the model's class (read back); None: QA's

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a time-zone aware datetime, got naive {value.isoformat()}")


@dataclass(frozen=True)
class InspectionRecord:
    """One inspection to store: its outcome and boxes, where and by which model it was made."""

    id: str  # UUID string
    part_id: str
    line_id: str
    camera_id: str
    track_id: int
    outcome: Outcome
    reasons: tuple[str, ...]
    model_name: str
    model_version: str
    frame_seq: int
    captured_at: datetime  # aware; stored and returned as UTC
    evidence_sha256: str  # the JPEG of the crop in the EvidenceStore
    board_xyxy: tuple[float, float, float, float]  # where the crop was taken in the frame
    crop_width: int
    crop_height: int
    boxes: tuple[BoxRecord, ...] = ()
    recipe: str | None = None  # golden-reference inspections: the recipe (product) compared with,
    golden_sha256: str | None = None  # its golden image (sha256 of the file in the goldens folder),
    alignment_score: float | None = None  # and how well the board aligned to it (None: not measured)

    def __post_init__(self) -> None:
        _require_aware("captured_at", self.captured_at)


@dataclass(frozen=True)
class StoredInspection:
    """An inspection as read back: the record's fields plus what the store and QA added."""

    id: str
    part_id: str
    line_id: str
    camera_id: str
    track_id: int
    outcome: Outcome
    reasons: tuple[str, ...]
    model_name: str
    model_version: str
    frame_seq: int
    captured_at: datetime  # UTC
    created_at: datetime  # UTC, when the store committed it
    evidence_sha256: str
    board_xyxy: tuple[float, float, float, float]
    crop_width: int
    crop_height: int
    boxes: tuple[BoxRecord, ...]
    review_status: ReviewStatus
    reviewed_by: str | None
    reviewed_at: datetime | None
    version: int  # bumped on every change; updates name the version they read
    recipe: str | None = None  # golden-reference inspections only (see InspectionRecord)
    golden_sha256: str | None = None
    alignment_score: float | None = None
    reviewed_by_id: str | None = None  # the reviewing token's id (reviewed_by is its name)
    model_outcome: Outcome | None = None  # the model's verdict (None: read from a store without it: outcome)
    corrected: bool = False  # the final verdict differs from the model's (inspection.core.outcome.is_correction)

    @property
    def model_verdict(self) -> Outcome:
        """The verdict the model made, before any review."""
        return self.model_outcome if self.model_outcome is not None else self.outcome

    @property
    def live_boxes(self) -> tuple[BoxRecord, ...]:
        """The boxes no reviewer rejected."""
        return tuple(b for b in self.boxes if not b.rejected)

    @property
    def max_confidence(self) -> float:
        """Highest confidence of the live boxes (0 without any): the review queue's second key."""
        return max((b.confidence for b in self.live_boxes), default=0.0)

    @property
    def defect_classes(self) -> tuple[str, ...]:
        """Sorted unique classes of the live boxes."""
        return tuple(sorted({b.class_name for b in self.live_boxes}))


@dataclass(frozen=True)
class AuditEntry:
    """One review action as recorded: who (token name, id and role), when, the state before and after."""

    id: int
    inspection_id: str
    at: datetime  # UTC
    actor: str  # the token's name
    role: str
    action: str
    before: dict[str, Any]
    after: dict[str, Any]
    comment: str | None
    actor_id: str | None = None  # the token's id (None: recorded before ids were, with a shared name)


@dataclass(frozen=True)
class InspectionFilter:
    """What ``InspectionStore.list`` and ``counts`` select; None means any."""

    outcome: Outcome | None = None
    review_status: ReviewStatus | None = None
    line_id: str | None = None
    camera_id: str | None = None
    created_from: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    defect_class: str | None = None  # has a live (not rejected) box of this class
    outcomes: tuple[Outcome, ...] | None = None  # any of these (current) verdicts, e.g. fail and uncertain
    part_id_contains: str | None = None  # the part id contains this text (case-sensitive)

    def __post_init__(self) -> None:
        for name in ("created_from", "created_before"):
            value = getattr(self, name)
            if value is not None:
                _require_aware(name, value)


@dataclass(frozen=True)
class Page:
    """One page of a listing, newest first; pass ``next_cursor`` back for the next page."""

    items: tuple[StoredInspection, ...]
    next_cursor: str | None  # None when this is the last page
