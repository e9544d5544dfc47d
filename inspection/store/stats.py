"""Aggregates over stored inspections for the dashboard: counts, review totals, Pareto, trend.

Everything is computed in SQL (GROUP BY over the covering indexes ``ix_inspections_stats``,
``ix_inspections_line_stats`` and ``ix_boxes_pareto``), so the cost grows with the rows
selected, never with Python objects built per row. Counts are of the current verdicts
(after review); the Pareto counts boxes no reviewer rejected.

Throughput is over the time the line ran, not over the window asked for: the line ran
between two consecutive inspections of the selection that are at most ``IDLE_GAP_S``
apart (a longer gap is a stop: a break, a shift change, the night). Each such gap is
running time, and the inspection that ends it one board made in that time; a board that
starts a run is no time. So a run of N boards from t0 to t1 counts N - 1 boards in
t1 - t0 seconds, per bucket (a gap belongs to the bucket of the board that ends it) and
in total; the gaps are a window function (``lag``) over the selection in ``created_at``
order, summed in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Connection, DateTime, String, case, func, select

from inspection.core.outcome import Outcome
from inspection.store.errors import StoreError
from inspection.store.models import BoxRow, InspectionRow
from inspection.store.queries import conditions
from inspection.store.records import InspectionFilter, ReviewStatus

MAX_BUCKETS = 10_000


class Bucket(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    AUTO = "auto"  # the finest bucket that splits the selection's time span into at most AUTO_MAX_BUCKETS


IDLE_GAP_S = 120.0  # a longer gap between two inspections of the selection is a stop, not running time
AUTO_MAX_BUCKETS = 240  # a run of minutes gets minute buckets, a shift hours, a month days


BUCKET_SECONDS = {Bucket.MINUTE: 60, Bucket.HOUR: 3600, Bucket.DAY: 86400}  # finest first
# SQLite: (length of the 'YYYY-MM-DD HH:MM' prefix kept, what makes it ISO 8601 again)
_SQLITE_PREFIX = {Bucket.MINUTE: (16, ""), Bucket.HOUR: (13, ":00"), Bucket.DAY: (10, "")}


class StatsRangeError(StoreError):
    """The selection spans more time buckets than one answer may hold."""


def per_hour(boards: int, seconds: float) -> float | None:
    """Boards per hour of running time; None when the line ran no measurable time."""
    return round(boards * 3600.0 / seconds, 3) if seconds > 0 else None


@dataclass(frozen=True)
class Running:
    """Running time in a bucket (or in all): the gaps of at most IDLE_GAP_S, and the boards that end them."""

    seconds: float = 0.0
    boards: int = 0

    @property
    def per_hour(self) -> float | None:
        return per_hour(self.boards, self.seconds)


@dataclass(frozen=True)
class TrendPoint:
    start: datetime  # UTC start of the bucket
    counts: dict[Outcome, int]
    running: Running = Running()


@dataclass(frozen=True)
class Stats:
    counts: dict[Outcome, int]  # every outcome present
    reviewed: int  # review status other than pending
    corrected: int  # final verdict differs from the model's (inspection.core.outcome.is_correction)
    first: datetime | None  # created_at of the oldest / newest selected inspection
    last: datetime | None
    pareto: tuple[tuple[str, int], ...]  # (class, live boxes), most frequent first
    trend: tuple[TrendPoint, ...]  # non-empty buckets, oldest first
    bucket: Bucket = Bucket.HOUR  # the trend's bucket (never AUTO: what AUTO chose)
    running: Running = Running()  # over the whole selection

    @property
    def inspected(self) -> int:
        return sum(self.counts.values())


def _bucket_column(conn: Connection, bucket: Bucket) -> ColumnElement[Any]:
    if conn.dialect.name == "sqlite":  # created_at is stored as 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text
        return func.substr(InspectionRow.created_at, 1, _SQLITE_PREFIX[bucket][0], type_=String)
    if conn.dialect.name == "postgresql":
        return func.date_trunc(bucket.value, func.timezone("UTC", InspectionRow.created_at), type_=DateTime)
    raise StoreError(f"stats: no time buckets for database dialect {conn.dialect.name!r}")


def _bucket_start(value: Any, bucket: Bucket) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromisoformat(str(value) + _SQLITE_PREFIX[bucket][1]).replace(tzinfo=UTC)


def _epoch_seconds(conn: Connection) -> ColumnElement[Any]:
    col = InspectionRow.created_at
    if conn.dialect.name == "sqlite":  # julianday() reads the stored text; 2440587.5 is 1970-01-01T00:00Z
        return (func.julianday(col) - 2440587.5) * 86400.0
    if conn.dialect.name == "postgresql":
        return func.extract("epoch", col)
    raise StoreError(f"stats: no running time for database dialect {conn.dialect.name!r}")


def _running(conn: Connection, conds: list[ColumnElement[bool]], bucket: Bucket) -> dict[Any, Running]:
    """Running time and the boards made in it, per bucket (see the module docstring)."""
    t = _epoch_seconds(conn)
    order = (InspectionRow.created_at, InspectionRow.id)
    gap = (t - func.lag(t).over(order_by=order)).label("gap")
    inner = select(_bucket_column(conn, bucket).label("bucket"), gap).where(*conds).subquery()
    ran = inner.c.gap <= IDLE_GAP_S  # NULL for the first board: not running time
    query = select(
        inner.c.bucket, func.sum(case((ran, inner.c.gap), else_=0.0)), func.sum(case((ran, 1), else_=0))
    ).group_by(inner.c.bucket)
    return {value: Running(float(s or 0.0), int(n or 0)) for value, s, n in conn.execute(query).all()}


def resolve_bucket(bucket: Bucket, first: datetime | None, last: datetime | None) -> Bucket:
    """AUTO: the finest bucket giving at most AUTO_MAX_BUCKETS over first..last; any other bucket as it is."""
    if bucket is not Bucket.AUTO:
        return bucket
    span = (last - first).total_seconds() if first is not None and last is not None else 0.0
    for candidate, seconds in BUCKET_SECONDS.items():
        if span / seconds + 1 <= AUTO_MAX_BUCKETS:
            return candidate
    return Bucket.DAY


def _span(conn: Connection, conds: list[ColumnElement[bool]]) -> tuple[datetime | None, datetime | None]:
    col = InspectionRow.created_at
    first = conn.execute(select(func.min(col)).where(*conds)).scalar()
    last = conn.execute(select(func.max(col)).where(*conds)).scalar()
    return _aware(first), _aware(last)


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite min()/max() hand back the stored text
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _pareto(conn: Connection, conds: list[ColumnElement[bool]]) -> tuple[tuple[str, int], ...]:
    n = func.count().label("n")
    query = select(BoxRow.class_name, n).where(BoxRow.rejected.is_(False)).group_by(BoxRow.class_name)
    if conds:
        query = query.join(InspectionRow, InspectionRow.id == BoxRow.inspection_id).where(*conds)
    rows = conn.execute(query).all()
    return tuple(sorted(((str(name), int(count)) for name, count in rows), key=lambda r: (-r[1], r[0])))


def compute_stats(conn: Connection, flt: InspectionFilter | None, bucket: Bucket = Bucket.HOUR) -> Stats:
    """Counts, review totals, Pareto, running time and trend of the inspections ``flt`` selects."""
    conds = conditions(flt)
    first, last = _span(conn, conds)
    bucket = resolve_bucket(bucket, first, last)
    running = _running(conn, conds, bucket)
    if first is not None and last is not None:
        buckets = (last - first) / timedelta(seconds=BUCKET_SECONDS[bucket]) + 1
        if buckets > MAX_BUCKETS:
            raise StatsRangeError(
                f"the selection spans about {int(buckets)} {bucket.value} buckets "
                f"(at most {MAX_BUCKETS}): choose a larger bucket or a shorter time range"
            )
    label = _bucket_column(conn, bucket).label("bucket")
    col = InspectionRow
    reviewed_expr = col.review_status != ReviewStatus.PENDING.value
    corrected_expr = col.corrected.is_(True)  # the final verdict differs from the model's (is_correction)
    sums = [
        func.sum(case((cond, 1), else_=0))
        for cond in (*(col.outcome == o.value for o in Outcome), reviewed_expr, corrected_expr)
    ]
    rows = conn.execute(select(label, *sums).where(*conds).group_by(label)).all()  # one sort key: the bucket
    counts = dict.fromkeys(Outcome, 0)
    points, reviewed, corrected = [], 0, 0
    for value, *per_outcome, n_reviewed, n_corrected in rows:
        point = {outcome: int(n) for outcome, n in zip(Outcome, per_outcome, strict=True)}
        points.append(TrendPoint(_bucket_start(value, bucket), point, running.get(value, Running())))
        for outcome, n in point.items():
            counts[outcome] += n
        reviewed += int(n_reviewed)
        corrected += int(n_corrected)
    return Stats(
        counts=counts,
        reviewed=reviewed,
        corrected=corrected,
        first=first,
        last=last,
        pareto=_pareto(conn, conds),
        trend=tuple(sorted(points, key=lambda p: p.start)),
        bucket=bucket,
        running=Running(sum(r.seconds for r in running.values()), sum(r.boards for r in running.values())),
    )
