"""``twinspect predict`` / ``eval`` with a reference model: pairing, golden files, wrong inputs refused."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera.errors import ImageError
from inspection.core.errors import ModelError
from inspection.inference.models import model_input, require_input
from inspection.ml.pairing import Pair, pair_inputs
from tests.cli import REPO, run_cli
from tests.conftest import real_board_subset

pytestmark = pytest.mark.usefixtures("plain_model")  # v1's fp32 ONNX file, exported once


@pytest.fixture(scope="module")
def boards(tmp_path_factory) -> Path:
    return real_board_subset(tmp_path_factory.mktemp("pairs"), 3)


def test_model_input_comes_from_the_card(reference_model):
    assert model_input(reference_model) == "reference"
    assert model_input(REPO / "weights" / "defect-yolov8n-v1") == "image"
    with pytest.raises(ModelError, match="expects 'reference' input"):
        require_input(reference_model, "image", "dataset x.yaml")


def test_pairing_skips_templates_and_names_boards_without_a_golden(boards, tmp_path):
    files = sorted(boards.rglob("*.jpg"))
    pairs = pair_inputs(files)
    assert len(pairs) == 3 and all(p.board.name.endswith("_test.jpg") for p in pairs)
    assert all(p.golden == p.board.with_name(p.board.name.replace("_test", "_temp")) for p in pairs)
    lonely = tmp_path / "board.png"
    cv2.imwrite(str(lonely), np.zeros((64, 64), np.uint8))
    with pytest.raises(ImageError, match="board.png: no golden image"):
        pair_inputs([*files, lonely])
    golden = pairs[0].golden
    assert pair_inputs([lonely, golden], golden) == [Pair(lonely, golden)]


def test_predict_pairs_deeppcb_boards_and_reports_alignment(reference_model, boards):
    r = run_cli("predict", "-w", str(reference_model), str(boards), "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [Path(x["image"]).name for x in lines] == sorted(p.name for p in boards.rglob("*_test.jpg"))
    for x in lines:
        assert x["golden"].endswith("_temp.jpg") and x["alignment_score"] > 0.9
        assert x["width"] == 640 and isinstance(x["boxes"], list)


def test_predict_with_one_golden_and_a_board_of_another_product(reference_model, boards, tmp_path):
    tests = sorted(boards.rglob("*_test.jpg"))
    golden = tests[0].with_name(tests[0].name.replace("_test", "_temp"))
    r = run_cli("predict", "-w", str(reference_model), str(tests[0]), str(tests[1]), "--golden", str(golden), "--json")
    assert r.returncode == 0, r.stderr
    first, second = (json.loads(ln) for ln in r.stdout.splitlines())
    assert first["alignment_score"] > 0.9 and "error" not in first
    if "error" in second:  # another board's golden: it does not register, so it is not inspected
        assert second["error"].startswith("alignment failed") and second["boxes"] == []


def test_predict_reference_model_bad_input(reference_model, boards, tmp_path):
    lonely = tmp_path / "board.png"
    cv2.imwrite(str(lonely), np.zeros((64, 64), np.uint8))
    r = run_cli("predict", "-w", str(reference_model), str(lonely))
    assert r.returncode == 2 and "board.png: no golden image" in r.stderr
    corrupt = tmp_path / "golden.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff not a jpeg")
    test = next(boards.rglob("*_test.jpg"))
    r = run_cli("predict", "-w", str(reference_model), str(test), "--golden", str(corrupt))
    assert r.returncode == 2 and "golden.jpg" in r.stderr
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((200, 200), np.uint8))
    r = run_cli("predict", "-w", str(reference_model), str(test), "--golden", str(small))
    assert r.returncode == 2 and "small.png: golden image is 200x200" in r.stderr
    r = run_cli("predict", "-w", str(REPO / "weights" / "defect-yolov8n-v1"), str(test), "--golden", str(small))
    assert r.returncode == 2 and "--golden" in r.stderr


def test_eval_refuses_a_dataset_of_the_other_input(reference_model, deeppcb_factory, tmp_path):
    from inspection.ml.datasets.deeppcb import import_deeppcb

    import_deeppcb(deeppcb_factory(boards=4), tmp_path / "plain", val_percent=50)
    r = run_cli("eval", "-w", str(reference_model), "--data", str(tmp_path / "plain" / "data.yaml"))
    assert r.returncode == 2
    assert "expects 'reference' input" in r.stderr and "provides 'image'" in r.stderr
