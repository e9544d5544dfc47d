"""The watch after a promotion: the new model's rates against the previous model's, model.alert when one changes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from api.model_desk import DeskParts, ModelDesk
from inspection.core.outcome import Outcome
from inspection.ml.watch import compare, two_proportion
from inspection.store import (
    BoxRecord,
    EvidenceStore,
    InspectionRecord,
    InspectionStore,
    ModelStates,
    Version,
    open_database,
)
from sync.config import SyncSettings
from sync.schemas import ModelAlertData
from sync.service import SyncService
from tests.api.test_model_delivery import add_version

V1, V2 = Version("defect-yolov8n", 1), Version("defect-yolov8n", 2)


def test_two_proportion_z_test_against_known_values():
    z, p = two_proportion(30, 100, 10, 100)  # 0.3 vs 0.1: z = 0.2 / sqrt(0.2 * 0.8 * 0.02) = 3.5355
    assert z == pytest.approx(3.5355, abs=1e-4) and p == pytest.approx(4.07e-4, rel=0.01)
    assert two_proportion(0, 50, 0, 50) == (0.0, 1.0)
    same = [{"verdict": "pass", "corrected": False, "classes": set()}] * 40
    assert compare(same, same, ["open"], 0.01) == []


def record(i: int, version: int, outcome: Outcome) -> InspectionRecord:
    boxes = (BoxRecord(1, 1, 20, 20, 0.9, "short"),) if outcome is Outcome.FAIL else ()
    return InspectionRecord(
        id=str(uuid.uuid4()),
        part_id=f"p-{version}-{i}",
        line_id="line-1",
        camera_id="cam1",
        track_id=i,
        outcome=outcome,
        reasons=(),
        model_name="defect-yolov8n",
        model_version=str(version),
        frame_seq=i,
        captured_at=datetime.now(UTC),
        evidence_sha256="0" * 64,
        board_xyxy=(0, 0, 64, 64),
        crop_width=64,
        crop_height=64,
        boxes=boxes,
    )


def test_a_rate_that_jumps_after_a_promotion_raises_model_alert_once(tmp_path):
    db = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store = InspectionStore(db, EvidenceStore(tmp_path / "evidence"))
    sync = SyncService.open(db, SyncSettings(), forwarders=False)
    registry = tmp_path / "weights"
    for v in (1, 2):
        add_version(registry, v)
    desk = ModelDesk(ModelStates(db), DeskParts(registry, "line-1", sync=sync, watch_boards=20, watch_p=0.01))
    desk.start_line(V1)
    for i in range(30):  # one at a time: each its own created_at (the watch takes the previous model's last 20)
        store.save(record(i, 1, Outcome.FAIL if i % 10 == 0 else Outcome.PASS))  # 10 % fail
    desk.activate(V2, "ml", "new model")
    waiting = desk.watch()
    assert waiting is not None and (waiting["done"], waiting["boards"], waiting["needed"]) == (False, 0, 20)
    store.save_many([record(i, 2, Outcome.FAIL if i % 2 == 0 else Outcome.PASS) for i in range(20)])  # 50 % fail
    result = desk.watch()
    assert result is not None and result["done"] and result["boards"] == 20
    metrics = {a["metric"]: a for a in result["alerts"]}
    assert set(metrics) == {"fail", "class:short"}  # 2 of 20 -> 10 of 20; the short boxes with them
    assert (metrics["fail"]["previous_rate"], metrics["fail"]["rate"]) == (0.1, 0.5)
    assert desk.watch() == result  # recorded with the promotion: announced once
    alerts = [json.loads(e.body) for e in sync.log.read(0, 1000) if e.type == "model.alert"]
    assert len(alerts) == 2
    for a in alerts:
        ModelAlertData.model_validate(a["data"])
    assert alerts[0]["data"]["previous"] == "defect-yolov8n:1" and alerts[0]["data"]["version"] == "2"
    twin = json.loads(sync.twins.document_text("line-1")[1])["features"]["models"]["properties"]["defect"]
    assert twin["version"] == "2" and twin["alert"]["metric"] in metrics
    db.dispose()
