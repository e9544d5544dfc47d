"""InspectionStore: save verdict records, read them back as frozen dataclasses.

Writes go through ``write_bind`` (SQLite ``BEGIN IMMEDIATE``), one transaction per
``save_many`` call: the pipeline batches verdicts and commits each batch at once, so a
crash loses at most the batch in flight, never part of one.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Connection, Engine, and_, exc, func, or_, select
from sqlalchemy.orm import Session, selectinload

from inspection.store.db import write_bind
from inspection.store.errors import (
    DuplicateInspectionError,
    InspectionNotFoundError,
    InvalidCursorError,
    StoreError,
    StoreUnavailableError,
)
from inspection.store.evidence import EvidenceStore
from inspection.store.models import BoxRow, InspectionRow
from inspection.store.records import (
    BoxRecord,
    BoxSource,
    InspectionFilter,
    InspectionRecord,
    Page,
    ReviewStatus,
    StoredInspection,
)
from inspection.verdict import Outcome

MAX_PAGE = 1000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _to_row(rec: InspectionRecord, created_at: datetime) -> InspectionRow:
    x1, y1, x2, y2 = rec.board_xyxy
    return InspectionRow(
        id=rec.id, part_id=rec.part_id, line_id=rec.line_id, camera_id=rec.camera_id, track_id=rec.track_id,
        outcome=Outcome(rec.outcome).value, reasons=list(rec.reasons), model_name=rec.model_name,
        model_version=rec.model_version, frame_seq=rec.frame_seq, captured_at=rec.captured_at,
        created_at=created_at, evidence_sha256=rec.evidence_sha256, board_x1=x1, board_y1=y1, board_x2=x2,
        board_y2=y2, crop_width=rec.crop_width, crop_height=rec.crop_height,
        review_status=ReviewStatus.PENDING.value, version=1,
        boxes=[BoxRow(x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2, confidence=b.confidence, class_name=b.class_name,
                      source=BoxSource(b.source).value) for b in rec.boxes],
    )


def _to_stored(row: InspectionRow) -> StoredInspection:
    return StoredInspection(
        id=row.id, part_id=row.part_id, line_id=row.line_id, camera_id=row.camera_id, track_id=row.track_id,
        outcome=Outcome(row.outcome), reasons=tuple(row.reasons), model_name=row.model_name,
        model_version=row.model_version, frame_seq=row.frame_seq, captured_at=row.captured_at,
        created_at=row.created_at, evidence_sha256=row.evidence_sha256,
        board_xyxy=(row.board_x1, row.board_y1, row.board_x2, row.board_y2),
        crop_width=row.crop_width, crop_height=row.crop_height,
        boxes=tuple(BoxRecord(b.x1, b.y1, b.x2, b.y2, b.confidence, b.class_name, BoxSource(b.source))
                    for b in row.boxes),
        review_status=ReviewStatus(row.review_status), reviewed_by=row.reviewed_by,
        reviewed_at=row.reviewed_at, version=row.version,
    )


def encode_cursor(created_at: datetime, inspection_id: str) -> str:
    raw = json.dumps([created_at.astimezone(UTC).isoformat(), inspection_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, inspection_id = json.loads(raw)
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None or not isinstance(inspection_id, str):
            raise ValueError("naive time or non-string id")
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as error:
        raise InvalidCursorError(f"not a cursor this store handed out: {cursor[:80]!r}") from error
    return created_at, inspection_id


def _conditions(flt: InspectionFilter | None) -> list[ColumnElement[bool]]:
    if flt is None:
        return []
    col = InspectionRow
    conds: list[ColumnElement[bool]] = []
    if flt.outcome is not None:
        conds.append(col.outcome == Outcome(flt.outcome).value)
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
    return conds


def _after(cursor: str) -> ColumnElement[bool]:
    """Rows strictly after the cursor in (created_at desc, id desc) order."""
    created_at, inspection_id = decode_cursor(cursor)
    col = InspectionRow
    return or_(col.created_at < created_at, and_(col.created_at == created_at, col.id < inspection_id))


class InspectionStore:
    """Inspections, their boxes and their evidence; every value handed out is a frozen dataclass."""

    def __init__(self, engine: Engine, evidence: EvidenceStore, *,
                 clock: Callable[[], datetime] = _utc_now) -> None:
        self.engine = engine
        self.evidence = evidence
        self._write_engine = write_bind(engine)
        self._clock = clock

    @contextmanager
    def _session(self, write: bool = False) -> Iterator[Session]:
        where = self.engine.url.render_as_string(hide_password=True)
        try:
            with Session(self._write_engine if write else self.engine) as session, session.begin():
                yield session
        except exc.IntegrityError as error:
            text = str(error.orig)
            if "unique" in text.lower():
                raise DuplicateInspectionError(f"already stored in {where}: {text.strip()}") from error
            raise StoreError(f"{where} refused the write: {text.strip()}") from error
        except exc.OperationalError as error:
            raise StoreUnavailableError(f"database {where} failed: {str(error.orig).strip()}") from error

    def save_many(self, records: Sequence[InspectionRecord]) -> None:
        """Store all records in one transaction: all of them are committed, or none."""
        if not records:
            return
        created_at = self._clock()
        rows = [_to_row(rec, created_at) for rec in records]
        with self._session(write=True) as session:
            session.add_all(rows)

    def save(self, record: InspectionRecord) -> None:
        self.save_many([record])

    def adder(self, records: Sequence[InspectionRecord]) -> Callable[[Connection], None]:
        """A callable adding ``records`` inside a transaction someone else owns (the event log's outbox)."""
        created_at = self._clock()
        rows = [_to_row(rec, created_at) for rec in records]

        def add(conn: Connection) -> None:
            with Session(bind=conn) as session:
                session.add_all(rows)
                session.flush()

        return add

    def get(self, inspection_id: str) -> StoredInspection:
        with self._session() as session:
            row = session.get(InspectionRow, inspection_id, options=[selectinload(InspectionRow.boxes)])
            if row is None:
                raise InspectionNotFoundError(f"no inspection with id {inspection_id!r}")
            return _to_stored(row)

    def counts(self, flt: InspectionFilter | None = None) -> dict[Outcome, int]:
        """Number of inspections per outcome (every outcome present, zero when none)."""
        stmt = (select(InspectionRow.outcome, func.count()).where(*_conditions(flt))
                .group_by(InspectionRow.outcome))
        with self._session() as session:
            found = {Outcome(outcome): int(n) for outcome, n in session.execute(stmt)}
        return {outcome: found.get(outcome, 0) for outcome in Outcome}

    def list(self, flt: InspectionFilter | None = None, *, cursor: str | None = None,
             limit: int = 50) -> Page:
        """Inspections newest first (created_at desc, id desc), ``limit`` at a time.

        Keyset pagination: the cursor names the last row handed out, so rows inserted
        meanwhile never shift a page and deep pages cost the same as the first.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1..{MAX_PAGE}, got {limit}")
        conds = _conditions(flt)
        if cursor is not None:
            conds.append(_after(cursor))
        stmt = (select(InspectionRow).options(selectinload(InspectionRow.boxes)).where(*conds)
                .order_by(InspectionRow.created_at.desc(), InspectionRow.id.desc()).limit(limit + 1))
        with self._session() as session:
            rows = session.scalars(stmt).all()
            items = tuple(_to_stored(row) for row in rows[:limit])
        more = len(rows) > limit
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if more else None
        return Page(items=items, next_cursor=next_cursor)
