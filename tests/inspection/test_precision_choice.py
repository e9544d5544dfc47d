"""INT8 is served by default only where the card's own eval put it within 0.5 points of fp32."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from inspection.inference.models import choose_precision, served_precision, weights_file
from tests.cli import run_cli

FP32 = {"map50": 0.980, "deeppcb_fscore": 0.975}


@pytest.mark.parametrize(
    ("int8", "expected"),
    [
        ({"map50": 0.976, "deeppcb_fscore": 0.971}, "int8"),  # 0.4 points down on both: within
        ({"map50": 0.990, "deeppcb_fscore": 0.980}, "int8"),  # better
        ({"map50": 0.974, "deeppcb_fscore": 0.975}, "fp32"),  # mAP50 0.6 points down
        ({"map50": 0.980, "deeppcb_fscore": 0.969}, "fp32"),  # F 0.6 points down
        (None, "fp32"),
    ],
)
def test_the_rule_compares_map50_and_deeppcb_f(int8, expected):
    choice = choose_precision(FP32, int8)
    assert choice["precision"] == expected
    assert "0.5 points" in choice["rule"]


def _entry(tmp_path: Path, serving: str | None, with_int8: bool = True) -> Path:
    folder = tmp_path / "m-v1"
    folder.mkdir()
    card = {"name": "m", "version": 1, "class_names": ["a"]}
    if serving:
        card["serving"] = {"precision": serving}
    (folder / "card.json").write_text(json.dumps(card))
    (folder / "model.onnx").write_bytes(b"fp32")
    if with_int8:
        (folder / "model.int8.onnx").write_bytes(b"int8")
    return folder


def test_auto_serves_the_cards_choice_and_fp32_otherwise(tmp_path):
    chose_int8 = _entry(tmp_path, "int8")
    assert served_precision(chose_int8) == "int8"
    assert weights_file(chose_int8).name == "model.int8.onnx"
    assert weights_file(chose_int8, precision="fp32").name == "model.onnx"
    shutil.rmtree(chose_int8)
    assert weights_file(_entry(tmp_path, None)).name == "model.onnx"  # cards before the rule: fp32
    shutil.rmtree(tmp_path / "m-v1")
    assert weights_file(_entry(tmp_path, "int8", with_int8=False)).name == "model.onnx"  # file gone: fp32


def test_predict_refuses_an_unknown_precision(tmp_path):
    img = tmp_path / "a.jpg"
    img.write_bytes(b"")
    r = run_cli("predict", "-w", str(_entry(tmp_path, None)), str(img), "--precision", "fp16")
    assert r.returncode == 2 and "--precision" in r.stderr and "Traceback" not in r.stderr
