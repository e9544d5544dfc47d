"""The models shipped in weights/: intact cards, matching classes, and backend parity on real boards."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnxruntime as ort
import pytest

from inspection.core.classes import DEEPPCB_CLASSES, PART_CLASSES
from inspection.inference.cards import resolve_model_dir
from inspection.inference.models import model_input
from inspection.ml.datasets.yolo import load_data_yaml
from inspection.ml.evaluate import evaluate_weights
from inspection.ml.export import check_parity, export_onnx
from inspection.ml.hashing import file_sha256
from inspection.ml.images import read_image
from tests.conftest import REPO, real_board_subset

SHIPPED = {"defect-yolov8n": DEEPPCB_CLASSES, "part-yolov8n": PART_CLASSES}
DEFECT = REPO / "weights" / "defect-yolov8n"


@pytest.fixture(scope="module")
def defect_data(request) -> Path:
    """The real validation boards in the form the shipped defect model takes (plain images or reference pairs)."""
    kind = model_input(DEFECT)
    return request.getfixturevalue("real_deeppcb_reference" if kind == "reference" else "real_deeppcb")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_card_is_intact(name):
    entry = resolve_model_dir(REPO / "weights" / name)
    card = json.loads((entry / "card.json").read_text())
    assert tuple(card["class_names"]) == SHIPPED[name]
    assert set(card["files"]) >= {"model.pt", "model.onnx"}
    for fname, digest in card["files"].items():
        assert file_sha256(entry / fname) == digest, fname
    meta = ort.InferenceSession(str(entry / "model.onnx"), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert str(len(SHIPPED[name]) - 1) in meta.custom_metadata_map["names"]
    for key in (
        "name",
        "version",
        "task",
        "imgsz",
        "training_data",
        "epochs",
        "val_metrics",
        "history",
        "ultralytics_version",
        "torch_version",
        "created_at",
    ):
        assert key in card, key
    assert card["epochs"]["trained"] == len(card["history"])


def test_defect_model_onnx_and_torch_agree_on_real_boards(defect_data, tmp_path):
    # a 24-board subset of the real validation split keeps this quick
    spec = load_data_yaml(defect_data)
    sub = tmp_path / "sub"
    for d in ("images", "labels"):
        (sub / d / "val").mkdir(parents=True)
    for img in spec.images("val")[:24]:
        shutil.copy(img, sub / "images" / "val" / img.name)
        shutil.copy(spec.labels_for(img), sub / "labels" / "val" / (img.stem + ".txt"))
    (sub / "data.yaml").write_text(defect_data.read_text())
    weights = DEFECT
    a = evaluate_weights(weights, sub / "data.yaml", backend="onnx").summary()
    b = evaluate_weights(weights, sub / "data.yaml", backend="torch").summary()
    assert a["instances"] == b["instances"] > 0
    for key in ("map50", "map50_95", "deeppcb_fscore", "f1"):
        assert abs(a[key] - b[key]) <= 0.005, (key, a[key], b[key])


def test_export_parity_on_real_boards(defect_data, tmp_path):
    entry = resolve_model_dir(DEFECT)
    pt = tmp_path / "model.pt"
    shutil.copy(entry / "model.pt", pt)
    onnx_path = export_onnx(pt, imgsz=640, dynamic_batch=True)
    images = [read_image(p) for p in load_data_yaml(defect_data).images("val")[:6]]
    parity = check_parity(pt, onnx_path, images, conf=0.25)
    assert parity.boxes_torch > 0
    assert parity.unmatched <= max(1, parity.boxes_torch // 20)
    assert parity.max_box_diff_px < 1.0
    assert parity.max_conf_diff < 0.01


def test_predict_with_runners_side_by_side_gives_the_same_lines_in_file_order(tmp_path):
    from typer.testing import CliRunner

    from api.cli.main import app

    # tested boards of the DeepPCB layout: a plain model reads them alone, a reference model with their templates
    images = sorted(real_board_subset(tmp_path / "boards", 9, offset=100).rglob("*_test.jpg"))
    outputs = {}
    for runners in ("1", "2", "3"):
        result = CliRunner().invoke(
            app, ["predict", "-w", str(DEFECT), "--json", "--runners", runners, *map(str, images)]
        )
        assert result.exit_code == 0, result.output
        outputs[runners] = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [row["image"] for row in outputs["2"]] == [str(p) for p in images]
    assert outputs["1"] == outputs["2"] == outputs["3"]
    assert sum(len(row["boxes"]) for row in outputs["1"]) > 0
