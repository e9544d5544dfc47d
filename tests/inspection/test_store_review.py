"""The QA review schema (migration 0004): backfill of an existing database, and the query plans it is for."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.pool import NullPool

from inspection.core.outcome import Outcome
from inspection.store import EvidenceStore, InspectionFilter, InspectionStore, ReviewStatus, SortOrder, open_database
from inspection.store.db import _alembic_config
from inspection.store.models import BoxRow, InspectionRow
from inspection.store.queries import _b64, conditions
from inspection.store.repository import list_statement
from inspection.store.stats import Bucket, compute_stats
from tests.inspection.test_store import Clock, database_url, make_record

T = datetime(2026, 5, 9, 12, 0, tzinfo=UTC)


def _at_0003(url: str) -> None:
    """Migrate an empty database to revision 0003 only, as a twinspect before the QA review left it."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0003")
    finally:
        engine.dispose()


def _old_rows(url: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    cols = (
        "id, part_id, line_id, camera_id, track_id, outcome, reasons, model_name, model_version, frame_seq, "
        "captured_at, created_at, evidence_sha256, board_x1, board_y1, board_x2, board_y2, crop_width, "
        "crop_height"
    )
    try:
        with engine.begin() as conn:
            for ident, outcome in (("a", "fail"), ("b", "uncertain"), ("c", "pass")):
                conn.execute(
                    text(
                        f"INSERT INTO inspections ({cols}) VALUES (:id, :id, 'L1', 'cam1', 1, :o, '[]', "
                        "'m', '1', 1, :t, :t, :sha, 0, 0, 10, 10, 10, 10)"
                    ),
                    {"id": ident, "o": outcome, "t": T.replace(tzinfo=None), "sha": "0" * 64},
                )
            for ident, conf in (("a", 0.7), ("a", 0.9), ("b", 0.3)):
                conn.execute(
                    text(
                        "INSERT INTO boxes (inspection_id, x1, y1, x2, y2, confidence, class_name) "
                        "VALUES (:i, 1, 1, 5, 5, :c, 'open')"
                    ),
                    {"i": ident, "c": conf},
                )
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as url:
        if request.param == "sqlite":
            (tmp_path / "db").mkdir()
        _at_0003(url)
        _old_rows(url)
        yield url


def test_upgrading_a_0003_database_backfills_the_queue_columns(old_database: str):
    engine = open_database(old_database)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, max_confidence, risk_rank, review_status FROM inspections ORDER BY id")
            ).all()
            rejected = conn.execute(text("SELECT count(*) FROM boxes WHERE rejected")).scalar()
            audit = conn.execute(text("SELECT count(*) FROM review_audit")).scalar()
    finally:
        engine.dispose()
    assert [(r.id, pytest.approx(r.max_confidence), r.risk_rank) for r in rows] == [
        ("a", pytest.approx(0.9), 1),
        ("b", pytest.approx(0.3), 0),
        ("c", 0.0, 2),
    ]
    assert {r.review_status for r in rows} == {"pending"} and rejected == 0 and audit == 0


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_database(f"sqlite:///{tmp_path / 'plan.db'}")
    yield engine
    engine.dispose()


def _plan(engine: Engine, stmt: object) -> str:
    sql = str(stmt.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return " | ".join(str(row[-1]) for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))


def _risk_cursor() -> str:
    return _b64(["risk", 1, 0.42, T.isoformat(), "some-id"])


@pytest.mark.parametrize(
    ("flt", "cursor", "access"),
    [
        (None, None, "SCAN inspections USING INDEX ix_inspections_risk"),
        (None, "RISK", "SEARCH inspections USING INDEX ix_inspections_risk ((risk_rank,max_confidence)>(?,?))"),
        (
            InspectionFilter(review_status=ReviewStatus.PENDING),
            None,
            "SEARCH inspections USING INDEX ix_inspections_status_risk (review_status=?)",
        ),
        (
            InspectionFilter(review_status=ReviewStatus.PENDING),
            "RISK",
            "SEARCH inspections USING INDEX ix_inspections_status_risk "
            "(review_status=? AND (risk_rank,max_confidence)>(?,?))",
        ),
    ],
)
def test_the_risk_queue_is_an_index_scan_from_the_cursor(
    sqlite_engine: Engine, flt: InspectionFilter | None, cursor: str | None, access: str
):
    plan = _plan(sqlite_engine, list_statement(flt, _risk_cursor() if cursor else None, 51, SortOrder.RISK))
    # index order, then only a sort of the rows with equal (risk_rank, max_confidence): never a full sort
    assert plan == f"{access} | USE TEMP B-TREE FOR RIGHT PART OF ORDER BY", plan


def test_stats_read_covering_indexes_only(sqlite_engine: Engine):
    with sqlite_engine.connect() as conn:
        assert compute_stats(conn, None, Bucket.HOUR).inspected == 0
    for flt in (None, InspectionFilter(line_id="L1", created_from=T)):
        conds = conditions(flt)
        counts = (
            select(InspectionRow.outcome, InspectionRow.review_status, func.count())
            .where(*conds)
            .group_by(InspectionRow.outcome, InspectionRow.review_status)
        )
        assert "COVERING INDEX" in _plan(sqlite_engine, counts)
        pareto = select(BoxRow.class_name, func.count()).where(BoxRow.rejected.is_(False)).group_by(BoxRow.class_name)
        if conds:
            pareto = pareto.join(InspectionRow, InspectionRow.id == BoxRow.inspection_id).where(*conds)
        assert "COVERING INDEX ix_boxes_pareto" in _plan(sqlite_engine, pareto)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_stats_and_the_risk_order_on_each_backend(backend: str, tmp_path: Path):
    with database_url(backend, tmp_path) as url:
        engine = open_database(url)
        try:
            clock = Clock(T)
            store = InspectionStore(engine, EvidenceStore(tmp_path / "evidence"), clock=clock)
            recs = []
            for i, outcome in enumerate([Outcome.FAIL, Outcome.PASS, Outcome.UNCERTAIN, Outcome.FAIL] * 2):
                rec = make_record(
                    store.evidence,
                    f"p{i}",
                    outcome=outcome,
                    boxes=0 if outcome is Outcome.PASS else 2,
                    seed=i,
                    line_id=f"L{i % 2}",
                )
                store.save(rec)
                recs.append(rec)
                clock.tick(1800)  # two per hour
            stats = store.stats(None, Bucket.HOUR)
            assert stats.counts == {Outcome.FAIL: 4, Outcome.PASS: 2, Outcome.UNCERTAIN: 2}
            assert [(p.start, sum(p.counts.values())) for p in stats.trend] == [
                (T.replace(hour=12 + h), 2) for h in range(4)
            ]
            assert dict(stats.pareto) == Counter(b.class_name for r in recs for b in r.boxes)
            assert (stats.first, stats.last) == (T, T.replace(hour=15, minute=30))
            assert sum(p.counts[Outcome.FAIL] for p in store.stats(None, Bucket.DAY).trend) == 4
            assert len(store.stats(InspectionFilter(line_id="L1"), Bucket.MINUTE).trend) == 4
            page = store.list(limit=3, sort=SortOrder.RISK)
            rest = store.list(limit=10, sort=SortOrder.RISK, cursor=page.next_cursor)
            got = [x.outcome for x in page.items + rest.items]
            assert got == [Outcome.UNCERTAIN] * 2 + [Outcome.FAIL] * 4 + [Outcome.PASS] * 2 and rest.next_cursor is None
        finally:
            engine.dispose()
