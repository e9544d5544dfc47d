"""The promotion gate on real boards: export parity first, then both models side by side on the val split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from api.model_gate import LineGate, judge_with
from inspection.core.detections import Detections
from inspection.inference.cards import resolve_model_dir
from inspection.ml.gate import GateConfig, Reviewed, reviewed_rates
from inspection.pipeline.rules import RulesConfig
from tests.api.test_model_delivery import SHIPPED, add_version
from tests.conftest import real_board_subset

pytestmark = pytest.mark.usefixtures("plain_model")  # v1's fp32 ONNX file, exported once


@pytest.fixture(scope="module")
def gate_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inspection.ml.datasets.deeppcb import import_deeppcb

    root = tmp_path_factory.mktemp("gate")
    boards = real_board_subset(root / "boards", 6, offset=10)
    import_deeppcb(boards, root / "ds", val_percent=50)
    return root / "ds" / "data.yaml"


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    reg = tmp_path / "weights"
    for v in (1, 2):
        folder = add_version(reg, v)
        (folder / "model.int8.onnx").symlink_to(SHIPPED / "model.int8.onnx")
    return reg


def test_an_equal_candidate_passes_and_the_table_shows_both_models(gate_set, registry):
    gate = LineGate(GateConfig(parity_images=2, class_recall_floor=0.0), RulesConfig(), "line-1", gate_set)
    result = gate(registry / "defect-yolov8n-v2", registry / "defect-yolov8n-v1")
    metrics = [r["metric"] for r in result.rows]
    assert metrics[:3] == ["int8 vs onnx: unmatched boxes", "int8 vs onnx: box diff px", "int8 vs onnx: conf diff"]
    assert "val deeppcb_fscore" in metrics and "val map50" in metrics
    assert any(m.startswith("val recall ") for m in metrics)
    assert result.passed, result.table()
    f = next(r for r in result.rows if r["metric"] == "val deeppcb_fscore")
    assert f["active"] == f["candidate"] is not None
    table = "\n".join(result.table())
    assert "active" in table and "candidate" in table
    assert any("no model.pt" in n for n in result.notes)


def test_a_candidate_below_the_margin_is_refused_with_its_figures(gate_set, registry):
    gate = LineGate(GateConfig(parity_images=0, margin=-0.5), RulesConfig(), "line-1", gate_set)
    result = gate(registry / "defect-yolov8n-v2", registry / "defect-yolov8n-v1")
    assert not result.passed
    assert any(f.startswith("val deeppcb_fscore") for f in result.failures())


def test_a_corrupt_onnx_fails_the_gate_before_anything_is_measured(gate_set, registry):
    from inspection.core.errors import ModelError

    broken = add_version(registry, 3)
    (broken / "model.onnx").unlink()
    (broken / "model.onnx").write_bytes(b"truncated")
    gate = LineGate(GateConfig(parity_images=2), RulesConfig(), "line-1", gate_set)
    with pytest.raises(ModelError, match="not an ONNX model"):
        gate(broken, registry / "defect-yolov8n-v1")


class Answers:
    class_names = ("open", "short")
    imgsz = (64, 64)
    provider = "test"

    def __init__(self, confidences: list[float]) -> None:
        self.conf = iter(confidences)

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        c = next(self.conf)
        if c == 0:
            return [Detections.empty(self.class_names)]
        return [
            Detections(
                np.array([[0, 0, 9, 9]], np.float32), np.array([c], np.float32), np.zeros(1, np.int64), self.class_names
            )
        ]


def test_reviewed_boards_give_false_reject_and_miss_rates_by_the_line_rules():
    img = np.zeros((8, 8, 3), np.uint8)
    boards = [Reviewed(img, t) for t in ("pass", "pass", "pass", "pass", "fail", "fail")]
    # pass boards: a clear fail, an uncertain box, nothing, nothing; fail boards: nothing (missed), a clear fail
    rates = reviewed_rates(Answers([0.9, 0.3, 0, 0, 0, 0.8]), boards, judge_with(RulesConfig()))
    assert rates == {"boards": 6, "false_reject_rate": 0.5, "miss_rate": 0.5}


def test_the_lines_reviewed_inspections_are_replayed_through_both_models(populated, gate_set, registry):
    import uuid

    for i, action in ((4, "confirm"), (10, "reject")):  # line-1: a fail QA keeps, a fail QA rejects (truth: pass)
        r = populated.client.post(
            f"/api/v1/inspections/{uuid.UUID(int=i + 1)}/review", json={"action": action}, headers=populated.as_("qa")
        )
        assert r.status_code == 200, r.text
    config = GateConfig(parity_images=0, class_recall_floor=0.0)
    gate = LineGate(config, RulesConfig(), "line-1", gate_set, populated.store)
    result = gate(registry / "defect-yolov8n-v2", registry / "defect-yolov8n-v1")
    rows = {r["metric"]: r for r in result.rows}
    assert "reviewed inspections of the line replayed: 2" in result.notes
    for key in ("reviewed false_reject_rate", "reviewed miss_rate"):
        assert rows[key]["active"] == rows[key]["candidate"] and rows[key]["ok"]  # the same network on both sides


def test_a_reference_lines_reviewed_boards_reach_the_gate_as_the_model_saw_them(populated, tmp_path):
    """Board registered to its golden + the golden read back by sha256; boards that cannot be rebuilt are counted."""
    import json
    import uuid

    from inspection.ml.datasets.deeppcb import import_deeppcb
    from tests.api.conftest import add_reference_inspections
    from tests.conftest import make_deeppcb

    ref = add_reference_inspections(populated.services)  # one aligned board (short + open drawn), one unaligned
    for inspection_id in (ref.aligned_id, ref.unaligned_id, str(uuid.UUID(int=1))):  # the last: no golden at all
        r = populated.client.post(
            f"/api/v1/inspections/{inspection_id}/review", json={"action": "confirm"}, headers=populated.as_("qa")
        )
        assert r.status_code == 200, r.text
    shipped = resolve_model_dir(SHIPPED.with_name("defect-yolov8n"))  # the shipped reference model, both sides
    registry = tmp_path / "weights"
    for v in (2, 3):
        folder = registry / f"defect-yolov8n-v{v}"
        folder.mkdir(parents=True)
        (folder / "model.onnx").symlink_to(shipped / "model.onnx")
        card = {**json.loads((shipped / "card.json").read_text()), "version": v}
        (folder / "card.json").write_text(json.dumps(card))
    import_deeppcb(make_deeppcb(tmp_path / "src", boards=2), tmp_path / "ds", val_percent=50, input_kind="reference")
    assert populated.services.recipes is not None
    goldens = populated.services.recipes.files.root
    config = GateConfig(parity_images=0, class_recall_floor=0.0, margin=1.0)
    gate = LineGate(config, RulesConfig(), "line-1", tmp_path / "ds" / "data.yaml", populated.store, goldens)
    result = gate(registry / "defect-yolov8n-v3", registry / "defect-yolov8n-v2")

    assert "reviewed inspections of the line replayed: 1" in result.notes, result.notes
    left = next(n for n in result.notes if n.startswith("reviewed inspections left out"))
    assert "1 without their golden image" in left and "1 not registered to their golden" in left
    rows = {r["metric"]: r for r in result.rows}
    miss = rows["reviewed miss_rate"]
    assert miss["candidate"] == miss["active"] == 0.0  # the drawn short and open stand out against the golden

    gate_without = LineGate(config, RulesConfig(), "line-1", tmp_path / "ds" / "data.yaml", populated.store)
    notes = gate_without(registry / "defect-yolov8n-v3", registry / "defect-yolov8n-v2").notes
    assert "reviewed inspections of the line replayed: 0" in notes  # no goldens folder: nothing to rebuild ...
    assert any("3 without their golden image" in n for n in notes)  # ... and said so
