"""Bad input on the command line: one line naming the file or field, exit code 2, nothing written."""

from __future__ import annotations

import cv2
import numpy as np

from tests.cli import run_cli


def _error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("twinspect: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_predict_missing_path(tmp_path):
    r = run_cli("predict", "-w", "weights/defect-yolov8n", str(tmp_path / "nope.jpg"))
    assert r.returncode == 2
    assert "nope.jpg" in _error_line(r.stderr)


def test_predict_weights_that_are_not_a_model(tmp_path):
    fake = tmp_path / "model.onnx"
    fake.write_text("hello")
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    r = run_cli("predict", "-w", str(fake), str(img))
    assert r.returncode == 2
    assert "model.onnx: not an ONNX model" in _error_line(r.stderr)
    r = run_cli("predict", "-w", str(tmp_path), str(img))
    assert r.returncode == 2
    assert "not a registered model" in _error_line(r.stderr)


def test_import_bad_rows_lists_files_and_writes_nothing(deeppcb_factory, tmp_path):
    src = deeppcb_factory(boards=4)
    label = sorted((src / "PCBData").rglob("*_not/*.txt"))[0]
    label.write_text("1,2,3\n")
    out = tmp_path / "out"
    r = run_cli("datasets", "import", "deeppcb", str(src), "--out", str(out))
    assert r.returncode == 2
    assert label.name in r.stderr and "expected 5 fields" in r.stderr
    assert not out.exists()


def test_bad_option_value_names_the_field(tmp_path):
    r = run_cli("train", "--task", "colour", "--data", str(tmp_path / "x.yaml"))
    assert r.returncode == 2
    assert "--task" in r.stderr


def test_train_missing_data_yaml(tmp_path):
    r = run_cli(
        "train",
        "--task",
        "defect",
        "--data",
        str(tmp_path / "missing.yaml"),
        "--data-dir",
        str(tmp_path / "d"),
        "--weights-dir",
        str(tmp_path / "w"),
    )
    assert r.returncode == 2
    assert "missing.yaml: data YAML not found" in _error_line(r.stderr)
    assert not (tmp_path / "w").exists()


def test_every_command_has_help():
    for cmd in (
        ["--help"],
        ["train", "--help"],
        ["eval", "--help"],
        ["predict", "--help"],
        ["export", "--help"],
        ["datasets", "import", "deeppcb", "--help"],
        ["datasets", "synth-line", "--help"],
        ["models", "register", "--help"],
        ["config", "check", "--help"],
    ):
        r = run_cli(*cmd)
        assert r.returncode == 0 and "Usage" in r.stdout, cmd


def test_train_lr0_without_an_optimizer_is_refused_before_anything_runs(tmp_path):
    # Ultralytics' auto optimizer would silently ignore lr0: say so instead of training with another rate
    r = run_cli(
        "train",
        "--task",
        "defect",
        "--data",
        str(tmp_path / "none.yaml"),
        "--lr0",
        "0.001",
        "--data-dir",
        str(tmp_path / "data"),
    )
    assert r.returncode == 2
    assert "--lr0" in r.stderr and "--optimizer" in r.stderr
    assert not (tmp_path / "data").exists()


def test_predict_bad_runners_and_batch(tmp_path):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    r = run_cli("predict", "-w", "weights/defect-yolov8n", "--runners", "-1", str(img))
    assert r.returncode == 2
    assert "runners" in _error_line(r.stderr)
    r = run_cli("predict", "-w", "weights/defect-yolov8n", "--batch", "0", str(img))
    assert r.returncode == 2
    assert "batch" in _error_line(r.stderr)
