"""inspection.store: open + migrate, save/get/list/counts, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import api.tokens  # noqa: F401 - the token table lives in the same metadata
import sync.tables  # noqa: F401 - so do the event log tables
from inspection.core.detections import Detections
from inspection.core.outcome import Outcome
from inspection.pipeline.verdict import Verdict, inspection_record
from inspection.store import (
    DuplicateInspectionError,
    EvidenceStore,
    InspectionFilter,
    InspectionNotFoundError,
    InspectionRecord,
    InspectionStore,
    InvalidCursorError,
    NotADatabaseError,
    ReviewStatus,
    SchemaVersionError,
    StoreError,
    StoreUnavailableError,
    head_revision,
    open_database,
)
from inspection.store.models import Base

PG_URL = os.environ.get("TWINSPECT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CLASSES = ("open", "short", "mousebite", "spur", "copper", "pin-hole")
T0 = datetime(2026, 5, 9, 12, 0, 0, tzinfo=UTC)


# ---------------------------------------------------------------- databases


@contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh schema on the real PostgreSQL server; yields a URL whose search_path is it; drops it after."""
    schema = f"twinspect_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except exc.OperationalError as error:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL test server not reachable at {PG_URL}: {str(error.orig).strip()}\n"
            "These tests need the real server (they never skip): start PostgreSQL on 127.0.0.1:5432 "
            "or set TWINSPECT_TEST_POSTGRES_URL.",
            pytrace=False,
        )
    try:
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def database_url(backend: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'db' / 'twinspect.db'}"
    else:
        with pg_schema() as url:
            yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = open_database(db_url)
    yield eng
    eng.dispose()


class Clock:
    """A settable clock for created_at, so tests can make ties and gaps on purpose."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(engine: Engine, tmp_path: Path, clock: Clock) -> InspectionStore:
    return InspectionStore(engine, EvidenceStore(tmp_path / "evidence"), clock=clock)


# ---------------------------------------------------------------- values


def make_verdict(
    part_id: str,
    outcome: Outcome = Outcome.FAIL,
    boxes: int = 2,
    seed: int = 0,
    camera_id: str = "cam1",
    size: tuple[int, int] = (48, 64),
) -> Verdict:
    rng = np.random.default_rng(seed)
    h, w = size
    crop = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    xy = rng.uniform(0, min(h, w) / 2, (boxes, 2)).astype(np.float32)
    xyxy = np.concatenate([xy, xy + 10.5], axis=1).astype(np.float32)
    dets = Detections(
        xyxy,
        rng.uniform(0.3, 1.0, boxes).astype(np.float32),
        rng.integers(0, len(CLASSES), boxes).astype(np.int64),
        CLASSES,
    )
    return Verdict(
        part_id=part_id,
        camera_id=camera_id,
        track_id=seed + 1,
        outcome=outcome,
        defects=dets,
        crop=crop,
        board_xyxy=np.array([10.0, 20.0, 10.0 + w, 20.0 + h], np.float32),
        frame_seq=100 + seed,
        t_capture=12.5,
        reasons=("open near U3",) if boxes else (),
    )


def make_record(evidence: EvidenceStore, part_id: str, line_id: str = "L1", **kwargs: object) -> InspectionRecord:
    verdict = make_verdict(part_id, **kwargs)  # type: ignore[arg-type]
    return inspection_record(
        verdict,
        line_id=line_id,
        model_name="pcb-defects",
        model_version="3",
        captured_at=T0 - timedelta(seconds=1),
        evidence=evidence,
    )


# ---------------------------------------------------------------- open and migrate


def test_sqlite_open_creates_folder_and_sets_pragmas_on_every_connection(tmp_path: Path):
    path = tmp_path / "new" / "deeper" / "t.db"
    eng = open_database(f"sqlite:///{path}", busy_timeout_ms=4321)
    try:
        assert path.is_file()
        conns = [eng.connect() for _ in range(3)]  # three distinct pooled connections
        for conn in conns:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 4321
        for conn in conns:
            conn.close()
    finally:
        eng.dispose()


def test_migrated_schema_matches_the_models(engine: Engine):
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_heads() == (head_revision(),)
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []


def test_opening_an_existing_database_again_is_a_no_op(db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    first = open_database(db_url)
    evidence = EvidenceStore(tmp_path / "ev")
    InspectionStore(first, evidence).save(make_record(evidence, "p-1"))
    first.dispose()
    with caplog.at_level(logging.INFO, logger="inspection.store.db"):
        for _ in range(2):
            again = open_database(db_url)
            with again.connect() as conn:
                versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
                assert versions == [head_revision()]
            assert InspectionStore(again, evidence).counts()[Outcome.FAIL] == 1
            again.dispose()
    assert not [r for r in caplog.records if "migrating" in r.getMessage()]


def test_a_file_that_is_not_a_database_gives_store_error(tmp_path: Path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is a text file, not SQLite\n" * 200)
    with pytest.raises(NotADatabaseError, match="notes.db") as info:
        open_database(f"sqlite:///{path}")
    assert isinstance(info.value, StoreError)
    assert path.read_bytes().startswith(b"this is a text file")  # left untouched


def test_a_newer_schema_than_the_code_knows_gives_store_error(db_url: str):
    eng = open_database(db_url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    eng.dispose()
    with pytest.raises(SchemaVersionError, match="9999.*newer"):
        open_database(db_url)


def test_unreachable_server_gives_store_unavailable():
    with pytest.raises(StoreUnavailableError, match="127.0.0.1:1"):
        open_database("postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2")


def test_bad_url_gives_store_error():
    with pytest.raises(StoreError, match="not a database URL"):
        open_database("no url at all")


def test_concurrent_first_opens_migrate_once(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    errors: list[BaseException] = []
    engines: list[Engine] = []

    def opener() -> None:
        try:
            engines.append(open_database(url))
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for eng in engines:
        eng.dispose()
    assert errors == []
    with sqlite3.connect(tmp_path / "race.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]


def test_opening_an_up_to_date_database_does_not_wait_for_a_writer(tmp_path: Path):
    path = tmp_path / "busy.db"
    open_database(f"sqlite:///{path}").dispose()
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # the pipeline in the middle of a batch
        t0 = time.monotonic()
        eng = open_database(f"sqlite:///{path}", busy_timeout_ms=3000)
        assert InspectionStore(eng, EvidenceStore(tmp_path / "ev")).counts()[Outcome.FAIL] == 0
        eng.dispose()
        assert time.monotonic() - t0 < 1.5
    finally:
        writer.execute("ROLLBACK")
        writer.close()


# ---------------------------------------------------------------- save and read


def test_save_and_get_round_trip(store: InspectionStore, clock: Clock):
    verdict = make_verdict("cam1-7-100", Outcome.FAIL, boxes=3, seed=7)
    captured = datetime(2026, 5, 9, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    rec = inspection_record(
        verdict,
        line_id="L2",
        model_name="pcb-defects",
        model_version="v3.1",
        captured_at=captured,
        evidence=store.evidence,
    )
    store.save_many([rec])
    got = store.get(rec.id)
    assert (got.id, got.part_id, got.line_id, got.camera_id, got.track_id) == (rec.id, "cam1-7-100", "L2", "cam1", 8)
    assert (got.outcome, got.reasons, got.model_name, got.model_version) == (
        Outcome.FAIL,
        ("open near U3",),
        "pcb-defects",
        "v3.1",
    )
    assert got.frame_seq == 107 and got.crop_width == 64 and got.crop_height == 48
    assert got.captured_at == captured and got.captured_at.tzinfo == UTC
    assert got.created_at == clock.now
    assert got.board_xyxy == (10.0, 20.0, 74.0, 68.0)
    assert (got.review_status, got.reviewed_by, got.reviewed_at, got.version) == (ReviewStatus.PENDING, None, None, 1)
    want = [
        (pytest.approx(tuple(float(v) for v in b)), pytest.approx(float(c)), CLASSES[int(k)])
        for b, c, k in zip(verdict.defects.xyxy, verdict.defects.confidence, verdict.defects.class_id, strict=True)
    ]
    assert [((b.x1, b.y1, b.x2, b.y2), b.confidence, b.class_name) for b in got.boxes] == want
    assert all(b.source == "model" for b in got.boxes)
    image = cv2.imdecode(np.frombuffer(store.evidence.get(got.evidence_sha256), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == verdict.crop.shape
    with pytest.raises(AttributeError):
        got.outcome = Outcome.PASS  # type: ignore[misc]  # frozen


def test_a_pass_without_boxes_round_trips(store: InspectionStore):
    rec = make_record(store.evidence, "p-pass", outcome=Outcome.PASS, boxes=0)
    store.save(rec)
    got = store.get(rec.id)
    assert got.outcome == Outcome.PASS and got.boxes == () and got.reasons == ()


def test_get_unknown_id_raises(store: InspectionStore):
    with pytest.raises(InspectionNotFoundError, match="nope"):
        store.get("nope")


def test_save_many_is_all_or_nothing(store: InspectionStore):
    store.save(make_record(store.evidence, "dup"))
    batch = [make_record(store.evidence, f"new-{i}", seed=i) for i in range(3)]
    batch.insert(2, make_record(store.evidence, "dup", seed=9))
    with pytest.raises(DuplicateInspectionError, match="(?i)unique|duplicate"):
        store.save_many(batch)
    assert sum(store.counts().values()) == 1
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM boxes")).scalar() == 2
    store.save_many(batch[:2] + batch[3:])  # the store is still usable after the failed batch
    assert sum(store.counts().values()) == 4


def test_naive_datetimes_are_refused(store: InspectionStore):
    with pytest.raises(ValueError, match="aware"):
        inspection_record(
            make_verdict("p"),
            line_id="L",
            model_name="m",
            model_version="1",
            captured_at=datetime(2026, 1, 1),
            evidence=store.evidence,
        )
    with pytest.raises(ValueError, match="aware"):
        InspectionFilter(created_from=datetime(2026, 1, 1))


def test_deleting_an_inspection_cascades_to_its_boxes(store: InspectionStore):
    keep, drop = make_record(store.evidence, "keep", boxes=2), make_record(store.evidence, "drop", boxes=3, seed=1)
    store.save_many([keep, drop])
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM inspections WHERE id = :id"), {"id": drop.id})
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT inspection_id FROM boxes")).scalars().all() == [keep.id, keep.id]


def test_check_constraints_guard_the_enumerations(store: InspectionStore):
    store.save(make_record(store.evidence, "p"))
    with pytest.raises(exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(text("UPDATE inspections SET review_status = 'maybe'"))


# ---------------------------------------------------------------- listing and counts


def _fill(
    store: InspectionStore,
    clock: Clock,
    batches: list[int],
    created: dict[str, datetime] | None = None,
    prefix: str = "p",
) -> list[InspectionRecord]:
    """One save_many per entry (that many records, all with the same created_at), a tick between."""
    out = []
    for b, n in enumerate(batches):
        recs = [
            make_record(
                store.evidence,
                f"{prefix}-{b}-{i}",
                seed=i,
                boxes=i % 3,
                outcome=(Outcome.FAIL, Outcome.PASS, Outcome.UNCERTAIN)[(b + i) % 3],
                line_id=f"L{i % 2}",
                camera_id=f"cam{b % 2}",
            )
            for i in range(n)
        ]
        store.save_many(recs)
        out.extend(recs)
        if created is not None:
            created.update((r.id, clock.now) for r in recs)
        clock.tick()
    return out


def _page_all(store: InspectionStore, flt: InspectionFilter | None, limit: int) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(100):
        page = store.list(flt, cursor=cursor, limit=limit)
        assert len(page.items) <= limit
        ids.extend(item.id for item in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor
    raise AssertionError("pagination did not end")


def test_keyset_pagination_walks_everything_once_in_order(store: InspectionStore, clock: Clock):
    created: dict[str, datetime] = {}
    _fill(store, clock, [5, 1, 8, 4], created)  # ties on created_at inside each batch
    assert len(created) == 18
    expected = sorted(created, key=lambda i: (created[i], i), reverse=True)
    for limit in (1, 3, 5, 18, 100):
        assert _page_all(store, None, limit) == expected
    last = store.list(limit=18)
    assert len(last.items) == 18 and last.next_cursor is None


def test_pages_do_not_shift_when_rows_are_added_meanwhile(store: InspectionStore, clock: Clock):
    _fill(store, clock, [4, 4])
    first = store.list(limit=3)
    before = _page_all(store, None, 100)
    _fill(store, clock, [5], prefix="later")  # newer rows arrive while a reviewer pages
    rest = _page_all_from(store, first.next_cursor, 3)
    assert [i.id for i in first.items] + rest == before


def _page_all_from(store: InspectionStore, cursor: str | None, limit: int) -> list[str]:
    ids: list[str] = []
    while cursor is not None:
        page = store.list(cursor=cursor, limit=limit)
        ids.extend(item.id for item in page.items)
        cursor = page.next_cursor
    return ids


def test_filters_select_the_qa_queue_and_lines(store: InspectionStore, clock: Clock):
    recs = _fill(store, clock, [6, 6, 6])
    by_id = {r.id: r for r in recs}
    flagged = _page_all(store, InspectionFilter(outcome=Outcome.FAIL, review_status=ReviewStatus.PENDING), 4)
    assert sorted(flagged) == sorted(r.id for r in recs if r.outcome == Outcome.FAIL) and len(flagged) == 6
    assert _page_all(store, InspectionFilter(review_status=ReviewStatus.CONFIRMED), 4) == []
    line = _page_all(store, InspectionFilter(line_id="L1", camera_id="cam0"), 2)
    assert line and all(by_id[i].line_id == "L1" and by_id[i].camera_id == "cam0" for i in line)
    assert len(line) == sum(1 for r in recs if r.line_id == "L1" and r.camera_id == "cam0")
    window = InspectionFilter(created_from=T0 + timedelta(seconds=1), created_before=T0 + timedelta(seconds=2))
    assert sorted(_page_all(store, window, 5)) == sorted(r.id for r in recs[6:12])


def test_counts_by_outcome(store: InspectionStore, clock: Clock):
    assert store.counts() == {Outcome.PASS: 0, Outcome.FAIL: 0, Outcome.UNCERTAIN: 0}
    recs = _fill(store, clock, [7, 4])
    want = {o: sum(1 for r in recs if r.outcome == o) for o in Outcome}
    assert store.counts() == want and sum(want.values()) == 11
    line0 = store.counts(InspectionFilter(line_id="L0"))
    assert line0 == {o: sum(1 for r in recs if r.outcome == o and r.line_id == "L0") for o in Outcome}


def test_bad_cursor_and_limit_are_refused(store: InspectionStore):
    for cursor in ("garbage", "", "W10", "eyJhIjogMX0"):
        with pytest.raises(InvalidCursorError):
            store.list(cursor=cursor)
    for limit in (0, 1001):
        with pytest.raises(ValueError, match="limit"):
            store.list(limit=limit)


def test_sqlite_qa_queue_query_uses_its_index(tmp_path: Path):
    eng = open_database(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        with eng.connect() as conn:
            plan = conn.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT id FROM inspections "
                    "WHERE outcome = 'fail' AND review_status = 'pending' "
                    "ORDER BY created_at DESC, id DESC LIMIT 51"
                )
            ).all()
        detail = " ".join(str(row[-1]) for row in plan)
        assert "ix_inspections_queue" in detail and "TEMP B-TREE" not in detail, detail
    finally:
        eng.dispose()
