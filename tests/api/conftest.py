"""A populated twinspect app for API and browser tests: real board crops, stored inspections, a twin.

``build_populated_app(tmp_path, n=30)`` returns ``(app, services, admin_token)``:

- an SQLite database in ``tmp_path`` (migrated to head) holding ``n`` inspections whose
  evidence crops are cut from real DeepPCB boards, with their real defect boxes;
- the inspections were stored through the event log's outbox together with their
  ``part.inspected`` events, so the twins of ``line-1`` and ``line-2`` count them;
- ``Services(engine=None, ...)`` with the inspection store, the event log and twins, the
  token store, the shipped model folders, the DeepPCB class names and a recipe store (empty).

Inspection ``i`` (0-based) is: ``pass`` without boxes when ``i % 3 == 0``, ``fail`` when
``i % 3 == 1``, ``uncertain`` when ``i % 3 == 2``; on ``line-1`` when ``i`` is even, else
``line-2``; on ``cam1`` when ``i % 4 < 2``, else ``cam2``; stored in batches of 5, one
minute apart from ``T0``. The caller disposes of the database: ``dispose(services)``.

``add_reference_inspections(services)`` adds a recipe with a real golden image (a DeepPCB
template) and two inspections compared with it: one aligned (evidence = the golden with
a drawn short and open) and one whose alignment failed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from api.tokens import Role, TokenStore
from inspection.core.classes import DEEPPCB_CLASSES
from inspection.core.outcome import Outcome
from inspection.reference.recipe_store import RecipeStore
from inspection.store import (
    BoxRecord,
    EvidenceStore,
    InspectionRecord,
    InspectionStore,
    encode_jpeg,
    open_database,
)
from sync.config import SyncSettings
from sync.events import Draft, rfc3339
from sync.service import SyncService
from tests.conftest import REPO, deeppcb_source

T0 = datetime(2026, 5, 9, 12, 0, 0, tzinfo=UTC)
LINES = ("line-1", "line-2")
EDGE = "edge-test"
MODEL = ("defect-yolov8n", "1")
CROP_XY = (40, 60)  # where crops are cut from each 640x640 board
CROP_WH = (560, 480)
BATCH = 5


@dataclass(frozen=True)
class Crop:
    image: np.ndarray  # BGR
    boxes: tuple[tuple[float, float, float, float, str], ...]  # the board's real defects inside the crop


def real_crops(k: int = 6) -> list[Crop]:
    """``k`` crops of real DeepPCB boards, with the labelled defects that lie inside them."""
    src = deeppcb_source() / "PCBData"
    out = []
    x0, y0 = CROP_XY
    w, h = CROP_WH
    for line in (src / "trainval.txt").read_text().split("\n")[:k]:
        image_rel, label_rel = line.split()
        stem = (src / image_rel).with_suffix("")
        board = cv2.imread(str(stem.with_name(stem.name + "_test.jpg")), cv2.IMREAD_COLOR)
        assert board is not None, stem
        boxes = []
        for row in (src / label_rel).read_text().split("\n"):
            if not row.strip():
                continue
            x1, y1, x2, y2, kind = (int(v) for v in row.replace(",", " ").split())
            if x1 >= x0 and y1 >= y0 and x2 <= x0 + w and y2 <= y0 + h:
                boxes.append(
                    (float(x1 - x0), float(y1 - y0), float(x2 - x0), float(y2 - y0), DEEPPCB_CLASSES[kind - 1])
                )
        out.append(Crop(np.ascontiguousarray(board[y0 : y0 + h, x0 : x0 + w]), tuple(boxes)))
    return out


def outcome_of(i: int) -> Outcome:
    return (Outcome.PASS, Outcome.FAIL, Outcome.UNCERTAIN)[i % 3]


def make_record(i: int, crop: Crop, sha: str, rng: np.random.Generator) -> InspectionRecord:
    outcome = outcome_of(i)
    lo, hi = (0.5, 0.99) if outcome is Outcome.FAIL else (0.25, 0.49)
    boxes: tuple[BoxRecord, ...] = ()
    if outcome is not Outcome.PASS:
        chosen = crop.boxes[: 1 + i % 3] or ((10.0, 10.0, 40.0, 40.0, "open"),)
        boxes = tuple(
            BoxRecord(x1, y1, x2, y2, round(float(rng.uniform(lo, hi)), 4), name) for x1, y1, x2, y2, name in chosen
        )
    reasons = tuple(f"{b.class_name} {b.confidence:.2f}" for b in boxes)
    h, w = crop.image.shape[:2]
    camera = "cam1" if i % 4 < 2 else "cam2"
    return InspectionRecord(
        id=str(uuid.UUID(int=i + 1)),
        part_id=f"run0-{camera}-{i}-{100 + i}",
        line_id=LINES[i % 2],
        camera_id=camera,
        track_id=i,
        outcome=outcome,
        reasons=reasons,
        model_name=MODEL[0],
        model_version=MODEL[1],
        frame_seq=100 + i,
        captured_at=T0 + timedelta(seconds=i),
        evidence_sha256=sha,
        board_xyxy=(40.0, 60.0, 40.0 + w, 60.0 + h),
        crop_width=w,
        crop_height=h,
        boxes=boxes,
    )


def inspected_draft(rec: InspectionRecord, at: datetime) -> Draft:
    data = {
        "part_id": rec.part_id,
        "camera_id": rec.camera_id,
        "track_id": rec.track_id,
        "inspection_id": rec.id,
        "verdict": rec.outcome.value,
        "defects": [
            {"xyxy": [b.x1, b.y1, b.x2, b.y2], "confidence": b.confidence, "class_name": b.class_name}
            for b in rec.boxes
        ],
        "reasons": list(rec.reasons),
        "board_box": list(rec.board_xyxy),
        "frame_seq": rec.frame_seq,
        "latency_ms": 12.5,
        "model": {"name": MODEL[0], "version": MODEL[1]},
    }
    return Draft(
        "part.inspected", rec.line_id, f"/twinspect/{EDGE}/{rec.camera_id}", data, subject=rec.part_id, time=rfc3339(at)
    )


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def build_populated_app(tmp_path: Path, n: int = 30) -> tuple[FastAPI, Services, str]:
    """See the module docstring; returns (app, services, admin_token)."""
    db = open_database(f"sqlite:///{tmp_path / 'twinspect.db'}")
    clock = _Clock()
    store = InspectionStore(db, EvidenceStore(tmp_path / "evidence"), clock=clock)
    sync = SyncService.open(db, SyncSettings(edge_id=EDGE), forwarders=False)
    crops = real_crops()
    shas = [store.evidence.put(encode_jpeg(c.image)) for c in crops]
    rng = np.random.default_rng(0)
    records = [make_record(i, crops[i % len(crops)], shas[i % len(crops)], rng) for i in range(n)]
    for start in range(0, n, BATCH):
        clock.now = T0 + timedelta(minutes=start // BATCH)
        batch = records[start : start + BATCH]
        sync.log.append([inspected_draft(r, clock.now) for r in batch], extra=store.adder(batch))
    tokens = TokenStore(db)
    _, admin = tokens.create(Role.ADMIN, "admin")
    services = Services(
        engine=None,
        sync=sync,
        tokens=tokens,
        inspections=store,
        model_dirs={"defect": REPO / "weights" / "defect-yolov8n", "part": REPO / "weights" / "part-yolov8n"},
        class_names=DEEPPCB_CLASSES,
        recipes=RecipeStore(db, tmp_path / "goldens"),
    )
    return create_app(services), services, admin


def dispose(services: Services) -> None:
    assert services.inspections is not None
    services.inspections.engine.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Populated:
    """A running populated app: a client with no default token, and a token per role."""

    client: TestClient
    services: Services
    tokens: dict[str, str]  # role (or "qa2": a second QA reviewer) -> clear token
    n: int

    @property
    def store(self) -> InspectionStore:
        assert self.services.inspections is not None
        return self.services.inspections

    @property
    def sync(self) -> SyncService:
        assert self.services.sync is not None
        return self.services.sync

    def as_(self, role: str) -> dict[str, str]:
        return bearer(self.tokens[role])


N_POPULATED = 30


@pytest.fixture
def populated(tmp_path: Path) -> Iterator[Populated]:
    app, services, admin = build_populated_app(tmp_path, N_POPULATED)
    assert services.tokens is not None
    tokens = {"admin": admin}
    for role, name in (
        ("qa", "alice"),
        ("qa2", "bob"),
        ("ml", "ml-eng"),
        ("twin", "twin-engine"),
        ("camera", "door-cam"),
    ):
        tokens[role] = services.tokens.create(role.rstrip("2"), name)[1]
    with TestClient(app) as client:
        yield Populated(client, services, tokens, N_POPULATED)
    dispose(services)


# -- golden-reference inspections -----------------------------------------------------------------

GOLDEN_RECIPE = "pcb-golden"
GOLDEN_BOARD = 3  # trainval.txt line whose template is the golden: traces and pads in the crop
SHORT_BAR = (306, 197, 340, 208)  # a drawn short (copper bridging two pads), crop = golden pixels
OPEN_CUT = (440, 200, 452, 226)  # a drawn open (a cut through a trace)


@dataclass(frozen=True)
class ReferenceInspections:
    """What ``add_reference_inspections`` stored."""

    aligned_id: str  # fail: evidence = the golden with a drawn short and open, boxes on them
    unaligned_id: str  # uncertain: alignment failed; evidence = a rotated raw crop
    golden_sha256: str
    golden: np.ndarray  # BGR, crop size


def golden_crop(board: int = GOLDEN_BOARD) -> np.ndarray:
    """The defect-free DeepPCB template of a trainval board, cut like the crops (CROP_XY, CROP_WH)."""
    src = deeppcb_source() / "PCBData"
    stem = (src / (src / "trainval.txt").read_text().split("\n")[board].split()[0]).with_suffix("")
    template = cv2.imread(str(stem.with_name(stem.name + "_temp.jpg")), cv2.IMREAD_COLOR)
    assert template is not None, stem
    (x0, y0), (w, h) = CROP_XY, CROP_WH
    return np.ascontiguousarray(template[y0 : y0 + h, x0 : x0 + w])


def reference_record(
    i: int,
    sha: str,
    image: np.ndarray,
    golden_sha: str,
    *,
    score: float,
    outcome: Outcome,
    boxes: tuple[BoxRecord, ...],
    reasons: tuple[str, ...],
) -> InspectionRecord:
    h, w = image.shape[:2]
    return InspectionRecord(
        id=str(uuid.UUID(int=1000 + i)),
        part_id=f"ref-cam1-{i}",
        line_id=LINES[0],
        camera_id="cam1",
        track_id=500 + i,
        outcome=outcome,
        reasons=reasons,
        model_name=MODEL[0],
        model_version=MODEL[1],
        frame_seq=500 + i,
        captured_at=T0 + timedelta(hours=1, seconds=i),
        evidence_sha256=sha,
        board_xyxy=(40.0, 60.0, 40.0 + w, 60.0 + h),
        crop_width=w,
        crop_height=h,
        boxes=boxes,
        recipe=GOLDEN_RECIPE,
        golden_sha256=golden_sha,
        alignment_score=score,
    )


def add_reference_inspections(services: Services) -> ReferenceInspections:
    """Store a recipe with a real golden image and two inspections compared with it (through the outbox)."""
    assert services.recipes is not None and services.inspections is not None and services.sync is not None
    golden = golden_crop()
    recipe = services.recipes.add(GOLDEN_RECIPE, cv2.imencode(".png", golden)[1].tobytes(), actor="test")
    board = golden.copy()
    cv2.rectangle(board, SHORT_BAR[:2], SHORT_BAR[2:], (0, 0, 0), -1)
    cv2.rectangle(board, OPEN_CUT[:2], OPEN_CUT[2:], (255, 255, 255), -1)
    h, w = golden.shape[:2]
    turned = cv2.warpAffine(
        board, cv2.getRotationMatrix2D((w / 2, h / 2), 9.0, 1.1), (w, h), borderValue=(255, 255, 255)
    )
    store = services.inspections
    aligned_sha, raw_sha = (store.evidence.put(encode_jpeg(im)) for im in (board, turned))
    boxes = (BoxRecord(300.0, 190.0, 346.0, 215.0, 0.93, "short"), BoxRecord(434.0, 194.0, 458.0, 232.0, 0.88, "open"))
    records = [
        reference_record(
            0,
            aligned_sha,
            board,
            recipe.golden_sha256,
            score=0.9731,
            outcome=Outcome.FAIL,
            boxes=boxes,
            reasons=("short 0.93", "open 0.88"),
        ),
        reference_record(
            1,
            raw_sha,
            turned,
            recipe.golden_sha256,
            score=0.41,
            outcome=Outcome.UNCERTAIN,
            boxes=(),
            reasons=("uncertain: alignment failed (score 0.41): ECC did not converge",),
        ),
    ]
    at = T0 + timedelta(hours=1)
    services.sync.log.append([inspected_draft(r, at) for r in records], extra=store.adder(records))
    return ReferenceInspections(records[0].id, records[1].id, recipe.golden_sha256, golden)
