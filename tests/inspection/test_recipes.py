"""Recipes and golden images: the store (SQLite and PostgreSQL), content addressing, bad input, DeepPCB, migration."""

from __future__ import annotations

import hashlib
import math
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.pool import NullPool

import inspection.ml.datasets.deeppcb_recipes as deeppcb_recipes
from inspection.ml.datasets.deeppcb_recipes import register_deeppcb_recipes
from inspection.pipeline.verdict import ReferenceInfo, inspection_record
from inspection.reference.goldens import GoldenFiles
from inspection.reference.recipe_store import RecipeStore
from inspection.reference.recipes import (
    AlignSettings,
    GoldenNotFound,
    GoldenSizeMismatch,
    RecipeError,
    RecipeExists,
    RecipeNotFound,
    RegionMask,
)
from inspection.store import EvidenceStore, InspectionStore, open_database
from inspection.store.db import _alembic_config
from tests.conftest import draw_board, real_board_subset
from tests.inspection.test_store import database_url, make_verdict

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def board(seed: int = 0, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A BGR board-like image of size (h, w)."""
    grey = draw_board(np.random.default_rng(seed), max(size))[: size[0], : size[1]]
    return cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2BGR)


def encoded(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return bytes(buf.tobytes())


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with database_url(request.param, tmp_path) as url:
        eng = open_database(url)
        yield eng
        eng.dispose()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = open_database(f"sqlite:///{tmp_path / 'db' / 'twinspect.db'}")
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine: Engine, tmp_path: Path) -> RecipeStore:
    return RecipeStore(engine, tmp_path / "goldens", clock=Clock())


def golden_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def row_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM recipes")).scalar_one())


# ---------------------------------------------------------------- add, get, list, golden


def test_add_get_list_and_golden_round_trip(any_engine: Engine, tmp_path: Path):
    store = RecipeStore(any_engine, tmp_path / "goldens", clock=Clock())
    image = board(1)
    data = encoded(image)
    masks = (RegionMask(x1=4, y1=6, x2=30, y2=20, label="serial sticker"),)
    align = AlignSettings(method="features", min_score=0.7)
    added = store.add("pcb-b", data, masks, align, "main board rev B", actor="ml-eng")
    store.add("pcb-a", encoded(board(2)), actor="ml-eng")
    sha = hashlib.sha256(data).hexdigest()
    assert (added.golden_sha256, added.width, added.height) == (sha, 128, 96)
    got = store.get("pcb-b")
    assert got == added
    assert (got.masks, got.align, got.description, got.created_by, got.created_at) == (
        masks,
        align,
        "main board rev B",
        "ml-eng",
        T0,
    )
    assert [r.name for r in store.list()] == ["pcb-a", "pcb-b"]
    path = tmp_path / "goldens" / sha[:2] / sha[2:4] / f"{sha}.png"
    assert path.read_bytes() == data == store.golden_bytes(sha)  # the bytes as given, content-addressed
    golden = store.golden("pcb-b")
    assert (golden.recipe, golden.sha256, golden.size, golden.align) == ("pcb-b", sha, (128, 96), align)
    assert np.array_equal(golden.image, cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    assert golden.ignore is not None and golden.ignore[6:20, 4:30].min() == 255 and golden.ignore.sum() == 255 * 26 * 14
    assert store.golden("pcb-a").ignore is None


def test_same_bytes_same_sha_one_file_and_every_format(store: RecipeStore, tmp_path: Path):
    image = board(3)
    a = store.add("a", encoded(image, ".png"))
    b = store.add("b", encoded(image, ".png"))
    assert a.golden_sha256 == b.golden_sha256
    assert len(golden_files(tmp_path / "goldens")) == 1
    for name, ext, media in (("j", ".jpg", "image/jpeg"), ("m", ".bmp", "image/bmp"), ("t", ".tiff", "image/tiff")):
        data = encoded(image, ext)
        rec = store.add(name, data)
        assert store.golden_file(rec.golden_sha256) == (data, media)
        assert store.golden(name).size == (128, 96)
    assert sorted(p.suffix for p in golden_files(tmp_path / "goldens")) == [".bmp", ".jpg", ".png", ".tif"]


# ---------------------------------------------------------------- bad input: clear errors, nothing stored


@pytest.mark.parametrize(
    "bad, message",
    [
        (b"", "empty file"),
        (b"hello, not an image", "not a JPEG, PNG, BMP or TIFF"),
        ("truncated-jpeg", "corrupt JPEG image (truncated)"),
        ("truncated-png", "corrupt PNG image (truncated)"),
        ("garbled-png", "corrupt PNG image"),
    ],
)
def test_a_corrupt_golden_is_refused_by_name_and_nothing_is_stored(
    store: RecipeStore, engine: Engine, tmp_path: Path, bad: bytes | str, message: str
):
    good_jpg, good_png = encoded(board(4), ".jpg"), encoded(board(4), ".png")
    data = {
        "truncated-jpeg": good_jpg[: len(good_jpg) // 2],
        "truncated-png": good_png[: len(good_png) - 20],
        "garbled-png": good_png[:40] + b"\x00" * (len(good_png) - 52) + good_png[-12:],
    }.get(str(bad), bad)
    assert isinstance(data, bytes)
    with pytest.raises(RecipeError, match="^" + re.escape(f"/boards/g.img: {message}")):
        store.add("pcb", data, where="/boards/g.img")
    assert row_count(engine) == 0 and golden_files(tmp_path / "goldens") == []


def test_bad_name_mask_and_description_are_refused_before_anything_is_written(
    store: RecipeStore, engine: Engine, tmp_path: Path
):
    data = encoded(board(5))
    for name in ("", "-lead", "has space", "x" * 101, "trail\n", "a/b"):
        with pytest.raises(RecipeError, match="^name "):
            store.add(name, data)
    with pytest.raises(RecipeError, match=r"^masks\[1\]: \(100,0\)-\(129,10\) is empty or outside the 128x96"):
        store.add("pcb", data, (RegionMask(x1=0, y1=0, x2=5, y2=5), RegionMask(x1=100, y1=0, x2=129, y2=10)))
    with pytest.raises(RecipeError, match=r"^masks\[0\]: .* is empty"):
        store.add("pcb", data, (RegionMask(x1=10, y1=10, x2=10, y2=20),))
    with pytest.raises(RecipeError, match="^description: at most 2000"):
        store.add("pcb", data, description="d" * 2001)
    assert row_count(engine) == 0 and golden_files(tmp_path / "goldens") == []


def test_unknown_recipe_and_golden(store: RecipeStore):
    with pytest.raises(RecipeNotFound, match="'nope': no such recipe"):
        store.get("nope")
    with pytest.raises(RecipeNotFound):
        store.golden("nope")
    with pytest.raises(RecipeNotFound):
        store.delete("nope")
    with pytest.raises(GoldenNotFound, match="no such file"):
        store.golden_bytes("0" * 64)
    with pytest.raises(RecipeError, match="not a lowercase hex sha256"):
        store.golden_bytes("../../etc/passwd")


def test_the_row_is_only_written_after_the_golden_file(
    store: RecipeStore, engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    def disk_full(self: GoldenFiles, goldens: object) -> None:
        raise RecipeError("cannot write golden image: No space left on device")

    monkeypatch.setattr(GoldenFiles, "put_many", disk_full)
    with pytest.raises(RecipeError, match="No space left"):
        store.add("pcb", encoded(board(6)))
    assert row_count(engine) == 0


# ---------------------------------------------------------------- replace


def test_replace_needs_asking_keeps_the_old_golden_and_refuses_another_size(store: RecipeStore, engine: Engine):
    first = store.add("pcb", encoded(board(7)), actor="a")
    cached = store.golden("pcb")
    with pytest.raises(RecipeExists, match="'pcb': a recipe of that name exists"):
        store.add("pcb", encoded(board(8)))
    assert store.get("pcb") == first
    with pytest.raises(GoldenSizeMismatch, match=r"^new.png: 128x64 image for recipe 'pcb', whose golden is 128x96"):
        store.add("pcb", encoded(board(8, (64, 128))), replace=True, where="new.png")
    assert store.get("pcb") == first and store.golden("pcb") is cached
    second = store.add("pcb", encoded(board(8)), description="rev 2", actor="b", replace=True)
    assert second.golden_sha256 != first.golden_sha256
    assert (second.created_by, second.updated_by, second.description) == ("a", "b", "rev 2")
    new_golden = store.golden("pcb")
    assert new_golden.sha256 == second.golden_sha256 and not np.array_equal(new_golden.image, cached.image)
    assert hashlib.sha256(store.golden_bytes(first.golden_sha256)).hexdigest() == first.golden_sha256
    resized = store.add("pcb", encoded(board(9, (64, 128))), replace=True, allow_resize=True)
    assert (resized.width, resized.height) == (128, 64) and row_count(engine) == 1
    store.delete("pcb")
    with pytest.raises(RecipeNotFound):
        store.get("pcb")
    assert store.golden_bytes(resized.golden_sha256)  # goldens outlive their recipes


def test_the_cache_is_bounded_and_sees_a_replacement_made_by_another_process(engine: Engine, tmp_path: Path):
    ours = RecipeStore(engine, tmp_path / "goldens", cache_size=2)
    theirs = RecipeStore(engine, tmp_path / "goldens")  # e.g. the CLI while serve runs
    for i, name in enumerate(("a", "b", "c")):
        ours.add(name, encoded(board(10 + i)))
    first = ours.golden("a")
    assert ours.golden("a") is first  # cached: same object
    ours.golden("b")
    ours.golden("c")
    assert ours.cached() == ("b", "c")  # "a" was least recently used
    theirs.add("b", encoded(board(20)), replace=True)
    assert ours.golden("b").sha256 == theirs.get("b").golden_sha256


def test_golden_is_thread_safe(store: RecipeStore):
    for i in range(4):
        store.add(f"r{i}", encoded(board(30 + i)))
    expected = {f"r{i}": store.get(f"r{i}").golden_sha256 for i in range(4)}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(k: int) -> None:
        try:
            barrier.wait()
            for j in range(40):
                name = f"r{(j + k) % 4}"
                assert store.golden(name).sha256 == expected[name]
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ---------------------------------------------------------------- DeepPCB: one recipe per board


def test_register_deeppcb_recipes_is_idempotent_and_cheap_the_second_time(
    store: RecipeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    boards = real_board_subset(tmp_path / "boards", 4, offset=10)
    listed = (boards / "PCBData" / "trainval.txt").read_text().split()
    ids = [Path(p).stem for p in listed[0::2]]
    assert register_deeppcb_recipes(store, boards) == 4
    recipes = {r.name: r for r in store.list()}
    assert sorted(recipes) == sorted(f"deeppcb-{i}" for i in ids)
    for board_id in ids:
        template = next((boards / "PCBData").rglob(f"{board_id}_temp.jpg"))
        assert recipes[f"deeppcb-{board_id}"].golden_sha256 == hashlib.sha256(template.read_bytes()).hexdigest()
    assert store.golden(f"deeppcb-{ids[0]}").size == (640, 640)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("an unchanged board was decoded again")

    with monkeypatch.context() as m:
        m.setattr(deeppcb_recipes, "draft_recipe", no_decoding)
        assert register_deeppcb_recipes(store, boards) == 0
    # a board whose template changed gets its new golden; the others stay as they were
    changed = next((boards / "PCBData").rglob(f"{ids[1]}_temp.jpg"))
    shutil.copy(next((boards / "PCBData").rglob(f"{ids[2]}_temp.jpg")), changed)
    assert register_deeppcb_recipes(store, boards) == 1
    assert store.get(f"deeppcb-{ids[1]}").golden_sha256 == recipes[f"deeppcb-{ids[2]}"].golden_sha256
    assert store.get(f"deeppcb-{ids[0]}") == recipes[f"deeppcb-{ids[0]}"]


def test_register_deeppcb_recipes_names_a_missing_template_and_writes_nothing(
    store: RecipeStore, engine: Engine, tmp_path: Path
):
    boards = real_board_subset(tmp_path / "boards", 3)
    missing = sorted((boards / "PCBData").rglob("*_temp.jpg"))[1]
    missing.unlink()
    with pytest.raises(RecipeError, match=f"{missing}: cannot read the template"):
        register_deeppcb_recipes(store, boards)
    assert row_count(engine) == 0 and golden_files(tmp_path / "goldens") == []
    with pytest.raises(RecipeError, match="test.txt: no such list file"):
        register_deeppcb_recipes(store, boards, "test.txt")
    with pytest.raises(RecipeError, match="not a DeepPCB folder"):
        register_deeppcb_recipes(store, tmp_path)


# ---------------------------------------------------------------- inspections name their golden


def test_an_inspection_keeps_its_recipe_golden_and_alignment_score(any_engine: Engine, tmp_path: Path):
    evidence = EvidenceStore(tmp_path / "evidence")
    inspections = InspectionStore(any_engine, evidence)
    sha = "ab" * 32
    verdicts = [
        replace(make_verdict("p-ref"), reference=ReferenceInfo("pcb-a", sha, 0.9731, True)),
        replace(make_verdict("p-nan"), reference=ReferenceInfo("pcb-a", sha, math.nan, False)),
        make_verdict("p-plain"),
    ]
    records = [
        inspection_record(v, line_id="L1", model_name="m", model_version="1", captured_at=T0, evidence=evidence)
        for v in verdicts
    ]
    assert [(r.recipe, r.golden_sha256, r.alignment_score) for r in records] == [
        ("pcb-a", sha, 0.9731),
        ("pcb-a", sha, None),
        (None, None, None),
    ]
    inspections.save_many(records)
    stored = {s.part_id: s for s in inspections.iterate()}
    assert (stored["p-ref"].recipe, stored["p-ref"].golden_sha256) == ("pcb-a", sha)
    assert stored["p-ref"].alignment_score == pytest.approx(0.9731)
    assert (stored["p-nan"].recipe, stored["p-nan"].alignment_score) == ("pcb-a", None)
    assert (stored["p-plain"].recipe, stored["p-plain"].golden_sha256, stored["p-plain"].alignment_score) == (
        None,
        None,
        None,
    )


# ---------------------------------------------------------------- migration 0005


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0005_upgrades_a_0004_database_and_downgrades(backend: str, tmp_path: Path):
    with database_url(backend, tmp_path) as url:
        if backend == "sqlite":
            (tmp_path / "db").mkdir()
        _migrate(url, "0004")
        _old_inspection(url)
        eng = open_database(url)  # to head: 0005
        try:
            cols = {c["name"]: c for c in inspect(eng).get_columns("inspections")}
            assert {"recipe", "golden_sha256", "alignment_score"} <= set(cols)
            assert all(cols[c]["nullable"] for c in ("recipe", "golden_sha256", "alignment_score"))
            old = InspectionStore(eng, EvidenceStore(tmp_path / "ev")).get("old-1")
            assert (old.recipe, old.golden_sha256, old.alignment_score) == (None, None, None)
            RecipeStore(eng, tmp_path / "goldens").add("pcb", encoded(board(40)))
        finally:
            eng.dispose()
        _migrate(url, "0004", down=True)
        check = create_engine(url, poolclass=NullPool)
        try:
            assert "recipes" not in inspect(check).get_table_names()
            assert "recipe" not in {c["name"] for c in inspect(check).get_columns("inspections")}
        finally:
            check.dispose()
        open_database(url).dispose()  # and up again


def _migrate(url: str, revision: str, down: bool = False) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(cfg, revision)
    finally:
        engine.dispose()


def _old_inspection(url: str) -> None:
    cols = (
        "id, part_id, line_id, camera_id, track_id, outcome, reasons, model_name, model_version, frame_seq, "
        "captured_at, created_at, evidence_sha256, board_x1, board_y1, board_x2, board_y2, crop_width, "
        "crop_height"
    )
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO inspections ({cols}) VALUES ('old-1', 'old-1', 'L1', 'cam1', 1, 'pass', "
                    "'[]', 'm', '1', 1, :t, :t, :sha, 0, 0, 10, 10, 10, 10)"
                ),
                {"t": T0.replace(tzinfo=None), "sha": "0" * 64},
            )
    finally:
        engine.dispose()
