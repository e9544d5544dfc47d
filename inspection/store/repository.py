"""InspectionStore: save verdict records, read them back as frozen dataclasses.

Writes go through ``write_bind`` (SQLite ``BEGIN IMMEDIATE``), one transaction per
``save_many`` call: the pipeline batches verdicts and commits each batch at once, so a
crash loses at most the batch in flight, never part of one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, Select, exc, func, or_, select
from sqlalchemy.orm import Session, selectinload

from inspection.core.outcome import Outcome
from inspection.store.db import translate, write_bind
from inspection.store.errors import (
    DuplicateInspectionError,
    InspectionNotFoundError,
    StoreError,
    StoreUnavailableError,
)
from inspection.store.evidence import EvidenceStore
from inspection.store.models import RISK_RANK, BoxRow, InspectionRow
from inspection.store.queries import after, conditions, decode_cursor, encode_cursor, order_by
from inspection.store.records import (
    AuditEntry,
    BoxRecord,
    BoxSource,
    InspectionFilter,
    InspectionRecord,
    Page,
    ReviewStatus,
    SortOrder,
    StoredInspection,
)
from inspection.store.reviews import ReviewChange, read_audit, review_writer
from inspection.store.stats import Bucket, Stats, compute_stats

__all__ = ["MAX_PAGE", "InspectionStore", "decode_cursor", "encode_cursor", "list_statement"]

MAX_PAGE = 1000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _to_row(rec: InspectionRecord, created_at: datetime) -> InspectionRow:
    x1, y1, x2, y2 = rec.board_xyxy
    return InspectionRow(
        id=rec.id,
        part_id=rec.part_id,
        line_id=rec.line_id,
        camera_id=rec.camera_id,
        track_id=rec.track_id,
        outcome=Outcome(rec.outcome).value,
        reasons=list(rec.reasons),
        model_name=rec.model_name,
        model_version=rec.model_version,
        frame_seq=rec.frame_seq,
        captured_at=rec.captured_at,
        created_at=created_at,
        evidence_sha256=rec.evidence_sha256,
        board_x1=x1,
        board_y1=y1,
        board_x2=x2,
        board_y2=y2,
        crop_width=rec.crop_width,
        crop_height=rec.crop_height,
        review_status=ReviewStatus.PENDING.value,
        version=1,
        max_confidence=max((b.confidence for b in rec.boxes if not b.rejected), default=0.0),
        risk_rank=RISK_RANK[Outcome(rec.outcome).value],
        recipe=rec.recipe,
        golden_sha256=rec.golden_sha256,
        alignment_score=rec.alignment_score,
        model_outcome=Outcome(rec.outcome).value,
        corrected=False,
        boxes=[
            BoxRow(
                x1=b.x1,
                y1=b.y1,
                x2=b.x2,
                y2=b.y2,
                confidence=b.confidence,
                class_name=b.class_name,
                source=BoxSource(b.source).value,
                rejected=b.rejected,
                model_class_name=b.class_name if BoxSource(b.source) is BoxSource.MODEL else None,
            )
            for b in rec.boxes
        ],
    )


def _to_stored(row: InspectionRow) -> StoredInspection:
    return StoredInspection(
        id=row.id,
        part_id=row.part_id,
        line_id=row.line_id,
        camera_id=row.camera_id,
        track_id=row.track_id,
        outcome=Outcome(row.outcome),
        reasons=tuple(row.reasons),
        model_name=row.model_name,
        model_version=row.model_version,
        frame_seq=row.frame_seq,
        captured_at=row.captured_at,
        created_at=row.created_at,
        evidence_sha256=row.evidence_sha256,
        board_xyxy=(row.board_x1, row.board_y1, row.board_x2, row.board_y2),
        crop_width=row.crop_width,
        crop_height=row.crop_height,
        boxes=tuple(
            BoxRecord(
                b.x1,
                b.y1,
                b.x2,
                b.y2,
                b.confidence,
                b.class_name,
                BoxSource(b.source),
                bool(b.rejected),
                b.id,
                b.model_class_name,
            )
            for b in row.boxes
        ),
        review_status=ReviewStatus(row.review_status),
        reviewed_by=row.reviewed_by,
        reviewed_at=row.reviewed_at,
        version=row.version,
        recipe=row.recipe,
        golden_sha256=row.golden_sha256,
        alignment_score=row.alignment_score,
        reviewed_by_id=row.reviewed_by_id,
        model_outcome=Outcome(row.model_outcome) if row.model_outcome else None,
        corrected=bool(row.corrected),
    )


def list_statement(
    flt: InspectionFilter | None, cursor: str | None, limit: int, sort: SortOrder = SortOrder.NEWEST
) -> Select[InspectionRow]:
    """The SELECT of one page (without loading the boxes): what ``list`` runs, for EXPLAIN in tests."""
    conds = conditions(flt)
    if cursor is not None:
        conds.append(after(cursor, sort))
    return select(InspectionRow).where(*conds).order_by(*order_by(sort)).limit(limit)


class InspectionStore:
    """Inspections, their boxes and their evidence; every value handed out is a frozen dataclass."""

    def __init__(self, engine: Engine, evidence: EvidenceStore, *, clock: Callable[[], datetime] = _utc_now) -> None:
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
            found = translate(error, self.engine.url, "write to" if write else "read")
            if not isinstance(found, StoreUnavailableError):
                found = StoreUnavailableError(f"database {where} failed: {str(error.orig).strip()}")
            raise found from error

    def save_many(self, records: Sequence[InspectionRecord]) -> None:
        """Store all records in one transaction: all of them are committed, or none."""
        if not records:
            return
        created_at = self._clock()
        rows = [_to_row(rec, created_at) for rec in records]
        with self._session(write=True) as session:
            session.add_all(rows)

    def save_new(self, records: Sequence[InspectionRecord]) -> list[InspectionRecord]:
        """Store, in one transaction, the records whose id and part are not stored yet; returns those.

        For copies of inspections made elsewhere (the hub's copy of its edges' inspections): a
        record already stored (a redelivered event) or whose part already has an inspection is
        skipped, so calling it again with the same records changes nothing.
        """
        if not records:
            return []
        ids, parts = {r.id for r in records}, {r.part_id for r in records}
        created_at = self._clock()
        with self._session(write=True) as session:
            found = session.execute(
                select(InspectionRow.id, InspectionRow.part_id).where(
                    or_(InspectionRow.id.in_(ids), InspectionRow.part_id.in_(parts))
                )
            ).all()
            seen_ids, seen_parts = {row.id for row in found}, {row.part_id for row in found}
            new = []
            for rec in records:
                if rec.id not in seen_ids and rec.part_id not in seen_parts:
                    seen_ids.add(rec.id)
                    seen_parts.add(rec.part_id)
                    new.append(rec)
            session.add_all([_to_row(rec, created_at) for rec in new])
        return new

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
        stmt = select(InspectionRow.outcome, func.count()).where(*conditions(flt)).group_by(InspectionRow.outcome)
        with self._session() as session:
            found = {Outcome(outcome): int(n) for outcome, n in session.execute(stmt)}
        return {outcome: found.get(outcome, 0) for outcome in Outcome}

    def list(
        self,
        flt: InspectionFilter | None = None,
        *,
        cursor: str | None = None,
        limit: int = 50,
        sort: SortOrder | str = SortOrder.NEWEST,
    ) -> Page:
        """Inspections in ``sort`` order (newest first by default), ``limit`` at a time.

        Keyset pagination: the cursor names the last row handed out, so rows inserted
        meanwhile never shift a page and deep pages cost the same as the first. A cursor
        only continues the sort order it came from.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1..{MAX_PAGE}, got {limit}")
        sort = SortOrder(sort)
        stmt = list_statement(flt, cursor, limit + 1, sort).options(selectinload(InspectionRow.boxes))
        with self._session() as session:
            rows = session.scalars(stmt).all()
            items = tuple(_to_stored(row) for row in rows[:limit])
        more = len(rows) > limit
        next_cursor = encode_cursor(items[-1], sort) if more else None
        return Page(items=items, next_cursor=next_cursor)

    def iterate(self, flt: InspectionFilter | None = None, chunk: int = 500) -> Iterator[StoredInspection]:
        """Every inspection ``flt`` selects, newest first, read a page at a time."""
        cursor: str | None = None
        while True:
            page = self.list(flt, cursor=cursor, limit=chunk)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # reviews and stats ---------------------------------------------------------------------------
    def review_writer(self, change: ReviewChange) -> Callable[[Connection], None]:
        """The writes of one review, to run inside a transaction someone else owns (the event log's outbox)."""
        return review_writer(change)

    def apply_writes(self, write: Callable[[Connection], None]) -> None:
        """Writes (several reviews at once) in one transaction of the store's own."""
        with self._session(write=True) as session:
            write(session.connection())

    def get_many(self, ids: Sequence[str]) -> dict[str, StoredInspection]:
        """The inspections of ``ids`` that exist, by id (one query, boxes included)."""
        stmt = select(InspectionRow).where(InspectionRow.id.in_(list(ids))).options(selectinload(InspectionRow.boxes))
        with self._session() as session:
            return {row.id: _to_stored(row) for row in session.scalars(stmt).all()}

    def count(self, flt: InspectionFilter | None = None) -> int:
        """How many inspections ``flt`` selects."""
        with self._session() as session:
            return int(
                session.execute(select(func.count()).select_from(InspectionRow).where(*conditions(flt))).scalar() or 0
            )

    def apply_review(self, change: ReviewChange) -> None:
        """The writes of one review in a transaction of the store's own."""
        with self._session(write=True) as session:
            review_writer(change)(session.connection())

    def audit(self, inspection_id: str) -> tuple[AuditEntry, ...]:
        """The audit trail of one inspection, oldest first (empty for an unknown id)."""
        with self._session() as session:
            return read_audit(session.connection(), inspection_id)

    def stats(self, flt: InspectionFilter | None = None, bucket: Bucket | str = Bucket.HOUR) -> Stats:
        """Counts, review totals, defect Pareto and trend of what ``flt`` selects (see stats.py)."""
        with self._session() as session:
            return compute_stats(session.connection(), flt, Bucket(bucket))
