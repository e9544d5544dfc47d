"""Storage models (SQLAlchemy 2 typed ORM). Never handed to callers: see records.py.

The schema is created and changed only by the Alembic scripts in migrations/; a test
checks that these models and the migrated database agree. The API token table lives in
api/tokens.py, the event log's tables in sync/tables.py (same metadata, same history).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

OUTCOMES = ("pass", "fail", "uncertain")
REVIEW_STATUSES = ("pending", "confirmed", "rejected", "corrected")
BOX_SOURCES = ("model", "review")
REVIEW_ACTIONS = ("confirm", "reject", "relabel", "add_box", "comment", "undo", "reopen")
# The review queue's order: uncertain parts first, then failed ones, then passed ones.
RISK_RANK = {"uncertain": 0, "fail": 1, "pass": 2}


def in_list(column: str, values: tuple[str, ...]) -> str:
    """SQL text of a CHECK that ``column`` takes one of ``values`` (shared with the migration)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is stored
    as naive UTC text (which also sorts correctly for keyset pagination).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; store aware UTC datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
BoxId = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid on SQLite


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class InspectionRow(Base):
    __tablename__ = "inspections"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    part_id: Mapped[str] = mapped_column(String(200), unique=True)
    line_id: Mapped[str] = mapped_column(String(100))
    camera_id: Mapped[str] = mapped_column(String(100))
    track_id: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str]] = mapped_column(JSONType)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(100))
    frame_seq: Mapped[int] = mapped_column(BigInteger)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    board_x1: Mapped[float] = mapped_column(Float)
    board_y1: Mapped[float] = mapped_column(Float)
    board_x2: Mapped[float] = mapped_column(Float)
    board_y2: Mapped[float] = mapped_column(Float)
    crop_width: Mapped[int] = mapped_column(Integer)
    crop_height: Mapped[int] = mapped_column(Integer)
    review_status: Mapped[str] = mapped_column(String(16), default="pending", server_default=text("'pending'"))
    reviewed_by: Mapped[str | None] = mapped_column(String(200))  # the reviewing token's name, for people
    reviewed_by_id: Mapped[str | None] = mapped_column(String(16))  # its id: whose review it is (NULL: see 0006)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    # denormalised for the review queue (ORDER BY risk_rank, max_confidence): kept in step
    # with outcome and the boxes that are not rejected by every write (_to_row, reviews)
    max_confidence: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    risk_rank: Mapped[int] = mapped_column(SmallInteger, default=2, server_default=text("2"))
    # golden-reference inspections: the recipe, the golden image (sha256 of its file) and the alignment score
    recipe: Mapped[str | None] = mapped_column(String(100))
    golden_sha256: Mapped[str | None] = mapped_column(String(64))
    alignment_score: Mapped[float | None] = mapped_column(Float)
    # the model's own verdict (outcome is the current one) and whether the final verdict differs from it
    # (inspection.core.outcome.is_correction, written with every review): see migration 0007
    model_outcome: Mapped[str | None] = mapped_column(String(16))
    corrected: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    boxes: Mapped[list[BoxRow]] = relationship(
        back_populates="inspection", cascade="all, delete-orphan", passive_deletes=True, order_by="BoxRow.id"
    )

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint(in_list("outcome", OUTCOMES), name="outcome"),
        CheckConstraint(in_list("review_status", REVIEW_STATUSES), name="review_status"),
        # each index ends in (created_at, id): the keyset order of InspectionStore.list,
        # so a filtered page is an index range scan with no sort.
        # The QA queue: flagged parts not yet reviewed, newest first.
        Index("ix_inspections_queue", "outcome", "review_status", "created_at", "id"),
        Index("ix_inspections_line_created", "line_id", "created_at", "id"),
        Index("ix_inspections_camera_created", "camera_id", "created_at", "id"),
        Index("ix_inspections_created", "created_at", "id"),
        # The risk queue (sort=risk), all parts or by review status: index order, then a
        # tiny sort of the rows with equal (risk_rank, max_confidence) newest first.
        Index("ix_inspections_risk", "risk_rank", "max_confidence", "created_at", "id"),
        Index("ix_inspections_status_risk", "review_status", "risk_rank", "max_confidence", "created_at", "id"),
        # Stats: covering indexes, so counts and trends never read the table itself.
        Index("ix_inspections_stats", "created_at", "outcome", "review_status"),
        Index("ix_inspections_line_stats", "line_id", "created_at", "outcome", "review_status"),
    )


class BoxRow(Base):
    __tablename__ = "boxes"

    id: Mapped[int] = mapped_column(BoxId, primary_key=True, autoincrement=True)
    inspection_id: Mapped[str] = mapped_column(String(36), ForeignKey("inspections.id", ondelete="CASCADE"))
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    class_name: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(16), default="model", server_default=text("'model'"))
    rejected: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    model_class_name: Mapped[str | None] = mapped_column(String(100))  # the model's class; NULL: drawn by a reviewer

    inspection: Mapped[InspectionRow] = relationship(back_populates="boxes")

    __table_args__ = (
        CheckConstraint(in_list("source", BOX_SOURCES), name="source"),
        Index("ix_boxes_inspection_id", "inspection_id"),
        Index("ix_boxes_pareto", "inspection_id", "rejected", "class_name"),  # covering: stats join
    )


class AuditRow(Base):
    """One review action on an inspection: who, when, what it was before and after."""

    __tablename__ = "review_audit"

    id: Mapped[int] = mapped_column(BoxId, primary_key=True, autoincrement=True)
    inspection_id: Mapped[str] = mapped_column(String(36), ForeignKey("inspections.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))  # the token's name
    actor_id: Mapped[str | None] = mapped_column(String(16))  # the token's id (NULL: see migration 0006)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    before: Mapped[dict[str, Any]] = mapped_column(JSONType)
    after: Mapped[dict[str, Any]] = mapped_column(JSONType)
    comment: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(in_list("action", REVIEW_ACTIONS), name="action"),
        Index("ix_review_audit_inspection", "inspection_id", "id"),
    )


class RecipeRow(Base):
    """A recipe (product): its golden image by sha256 (the file lives in the goldens folder), masks, alignment."""

    __tablename__ = "recipes"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    golden_sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    masks: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    align: Mapped[dict[str, Any]] = mapped_column(JSONType)
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(200))

    __table_args__ = (CheckConstraint("width > 0 AND height > 0", name="size"),)
