"""Migration 0007 (issue 12 items 1 and 6): reviews stored before it get the model's verdict and classes back.

A database at 0006 holds a rejected board (fail -> pass), a relabelled one (uncertain ->
fail, a box open -> spur), a confirmed fail and a pending one. After the upgrade each row
knows the model's verdict, whether it is a correction (the final verdict differs from the
model's) and each box its model class, so stats count the corrections the twin counts and
a reopen restores what the model said.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from inspection.store import EvidenceStore, InspectionStore, open_database
from inspection.store.db import _alembic_config
from tests.inspection.test_store import database_url

T = datetime(2026, 5, 9, 12, 0, tzinfo=UTC).replace(tzinfo=None)
COLS = (
    "id, part_id, line_id, camera_id, track_id, outcome, reasons, model_name, model_version, frame_seq, "
    "captured_at, created_at, evidence_sha256, board_x1, board_y1, board_x2, board_y2, crop_width, "
    "crop_height, review_status, reviewed_by"
)
# id: (current verdict, status, reviewer, audit (action, before verdict, before boxes)), box (id, class now)
ROWS = {
    "rej": ("pass", "rejected", "dave", ("reject", "fail", [{"id": 1, "class_name": "short"}]), (1, "short")),
    "rel": ("fail", "corrected", "dave", ("relabel", "uncertain", [{"id": 2, "class_name": "open"}]), (2, "spur")),
    "con": ("fail", "confirmed", "dave", ("confirm", "fail", []), (3, "open")),
    "pen": ("uncertain", "pending", None, None, (4, "mousebite")),
}


def _at_0006(url: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0006")
            for ident, (verdict, status, by, audit, (box_id, name)) in ROWS.items():
                conn.execute(
                    text(
                        f"INSERT INTO inspections ({COLS}) VALUES (:id, :id, 'L1', 'cam1', 1, :v, '[]', 'm', '1', 1, "
                        ":t, :t, :sha, 0, 0, 100, 100, 100, 100, :st, :by)"
                    ),
                    {"id": ident, "v": verdict, "t": T, "sha": "0" * 64, "st": status, "by": by},
                )
                conn.execute(
                    text(
                        "INSERT INTO boxes (id, inspection_id, x1, y1, x2, y2, confidence, class_name, source, "
                        "rejected) VALUES (:b, :i, 1, 1, 20, 20, 0.5, :n, 'model', :r)"
                    ),
                    {"b": box_id, "i": ident, "n": name, "r": status == "rejected"},
                )
                if audit is not None:
                    action, before_verdict, boxes = audit
                    before = {"verdict": before_verdict, "review_status": "pending", "boxes": boxes}
                    conn.execute(
                        text(
                            "INSERT INTO review_audit (inspection_id, at, actor, role, action, before, after) "
                            "VALUES (:i, :t, :by, 'qa', :a, :b, '{}')"
                        ),
                        {"i": ident, "t": T, "by": by, "a": action, "b": json.dumps(before)},
                    )
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrading_keeps_the_models_verdict_and_classes_of_old_reviews(backend: str, tmp_path: Path) -> None:
    with database_url(backend, tmp_path) as url:
        if backend == "sqlite":
            (tmp_path / "db").mkdir()
        _at_0006(url)
        engine = open_database(url)
        try:
            store = InspectionStore(engine, EvidenceStore(tmp_path / "evidence"))
            got = {i: store.get(i) for i in ROWS}
            assert {i: x.model_verdict.value for i, x in got.items()} == {
                "rej": "fail",
                "rel": "uncertain",
                "con": "fail",
                "pen": "uncertain",
            }
            assert {i for i, x in got.items() if x.corrected} == {"rej", "rel"}
            assert [b.model_class_name for b in got["rel"].boxes] == ["open"]  # before the relabel
            assert [b.model_class_name for b in got["rej"].boxes] == ["short"]
            assert store.stats().corrected == 2
        finally:
            engine.dispose()
