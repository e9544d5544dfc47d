"""A tiny real training run, offline: train -> register (card + ONNX) -> export -> predict -> eval.

Every step runs with name resolution and outside connections forbidden, so any
Ultralytics network call (analytics, fonts, weights, pip) fails the test.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli.main import app
from inspection.ml.datasets.deeppcb import import_deeppcb
from inspection.ml.hashing import file_sha256
from tests.conftest import make_deeppcb

runner = CliRunner()


def _forbid_network(mp: pytest.MonkeyPatch, attempts: list[str]) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(repr(args[:2]))
        raise OSError(f"network access attempted: {args[:2]!r}")

    mp.setattr(socket, "getaddrinfo", refuse)
    mp.setattr(socket, "create_connection", refuse)
    mp.setattr(socket.socket, "connect", lambda self, addr: refuse(addr))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run shared by the tests of this module (sockets forbidden throughout)."""
    root = tmp_path_factory.mktemp("e2e")
    src = make_deeppcb(root / "src", boards=8)
    import_deeppcb(src, root / "ds", val_percent=40)
    attempts: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        _forbid_network(mp, attempts)
        result = runner.invoke(
            app,
            [
                "train",
                "--task",
                "defect",
                "--data",
                str(root / "ds" / "data.yaml"),
                "--epochs",
                "1",
                "--imgsz",
                "64",
                "--batch",
                "4",
                "--name",
                "tiny",
                "--data-dir",
                str(root / "data"),
                "--weights-dir",
                str(root / "weights"),
            ],
        )
        STEPS["served after train"] = (root / "weights" / "defect-yolov8n").exists()
        activated = runner.invoke(
            app, ["models", "activate", "defect-yolov8n:1", "--weights-dir", str(root / "weights")]
        )
        STEPS["activate"] = (activated.exit_code, activated.output)
    return root, result, attempts


STEPS: dict[str, object] = {}  # what the fixture saw between its steps


def test_training_registers_a_model_with_a_card(trained):
    root, result, attempts = trained
    assert result.exit_code == 0, result.output
    assert attempts == []
    entry = root / "weights" / "defect-yolov8n-v1"
    # registering served nothing: the alias appeared only with the explicit activation
    assert STEPS["served after train"] is False
    assert f"twinspect models activate defect-yolov8n:1 --weights-dir {root / 'weights'}" in result.output
    code, output = STEPS["activate"]  # type: ignore[misc]
    assert code == 0 and "-> defect-yolov8n-v1 (was none)" in output, output
    assert (root / "weights" / "defect-yolov8n").read_text().strip() == entry.name
    card = json.loads((entry / "card.json").read_text())
    assert card["task"] == "defect" and card["version"] == 1
    assert card["class_names"] == ["open", "short", "mousebite", "spur", "copper", "pin-hole"]
    assert card["imgsz"] == 64 and card["epochs"] == {"planned": 1, "trained": 1}
    ds_card = json.loads((root / "ds" / "card.json").read_text())
    assert card["training_data"]["source_sha256"] == ds_card["source_sha256"]
    assert set(card["files"]) == {"model.pt", "model.onnx", "model.int8.onnx"}
    assert card["int8"]["file"] == "model.int8.onnx" and 0.0 <= card["int8"]["val_metrics"]["map50"] <= 1.0
    for name, digest in card["files"].items():
        assert file_sha256(entry / name) == digest
    assert 0.0 <= card["val_metrics"]["map50"] <= 1.0
    assert card["ultralytics_version"] and card["torch_version"] and card["created_at"]
    assert len(card["history"]) == 1
    # the run (and its checkpoints) live in the data dir, not in the registry
    assert (root / "data" / "runs" / "tiny" / "weights" / "last.pt").is_file()
    assert not list((root / "weights").rglob("last.pt"))


def test_registering_a_new_version_never_changes_what_is_served(trained):
    root, _, _ = trained
    weights, alias = root / "weights", root / "weights" / "defect-yolov8n"
    run = root / "data" / "runs" / "tiny"
    data = root / "ds" / "data.yaml"
    result = runner.invoke(
        app, ["models", "register", str(run), "--task", "defect", "--data", str(data), "--weights-dir", str(weights)]
    )
    assert result.exit_code == 0, result.output
    assert (weights / "defect-yolov8n-v2" / "card.json").is_file()
    assert alias.read_text().strip() == "defect-yolov8n-v1"  # still serving v1
    assert "served: defect-yolov8n-v1 (registering never changes it)" in result.output
    assert "twinspect models activate defect-yolov8n:2" in result.output
    moved = runner.invoke(app, ["models", "activate", "defect-yolov8n:2", "--weights-dir", str(weights)])
    assert moved.exit_code == 0 and alias.read_text().strip() == "defect-yolov8n-v2", moved.output
    back = runner.invoke(app, ["models", "activate", "defect-yolov8n-v1", "--weights-dir", str(weights)])
    assert back.exit_code == 0 and "(was defect-yolov8n-v2)" in back.output, back.output
    assert alias.read_text().strip() == "defect-yolov8n-v1"
    missing = runner.invoke(app, ["models", "activate", "defect-yolov8n:9", "--weights-dir", str(weights)])
    assert missing.exit_code != 0 and "defect-yolov8n-v1, defect-yolov8n-v2" in str(missing.exception)
    assert alias.read_text().strip() == "defect-yolov8n-v1"


def test_existing_run_needs_resume(trained):
    root, _, _ = trained
    result = runner.invoke(
        app,
        [
            "train",
            "--task",
            "defect",
            "--data",
            str(root / "ds" / "data.yaml"),
            "--epochs",
            "1",
            "--imgsz",
            "64",
            "--name",
            "tiny",
            "--data-dir",
            str(root / "data"),
            "--no-register",
        ],
    )
    assert result.exit_code != 0
    assert "--resume" in str(result.exception)


def test_predict_json_lines_offline(trained, monkeypatch):
    root, _, _ = trained
    attempts: list[str] = []
    _forbid_network(monkeypatch, attempts)
    images = root / "ds" / "images" / "val"
    result = runner.invoke(
        app, ["predict", "-w", str(root / "weights" / "defect-yolov8n"), str(images), "--json", "--conf", "0.0"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.output.strip().splitlines()]
    assert len(lines) == len(list(images.iterdir()))
    for row in lines:
        assert set(row) == {"image", "width", "height", "boxes"}
        assert (row["width"], row["height"]) == (640, 640)
        for box in row["boxes"]:
            assert set(box) == {"xyxy", "confidence", "class_name"}
            x1, y1, x2, y2 = box["xyxy"]
            assert 0 <= x1 <= x2 <= 640 and 0 <= y1 <= y2 <= 640
    assert attempts == []


def test_export_and_eval_offline(trained, monkeypatch):
    root, _, _ = trained
    attempts: list[str] = []
    _forbid_network(monkeypatch, attempts)
    entry = root / "weights" / "defect-yolov8n"
    result = runner.invoke(app, ["export", "-w", str(entry), "--dynamic-batch", "--check", "2"])
    assert result.exit_code == 0, result.output
    assert "largest box difference" in result.output
    card = json.loads((root / "weights" / "defect-yolov8n-v1" / "card.json").read_text())
    assert card["export"]["dynamic_batch"] is True
    assert file_sha256(root / "weights" / "defect-yolov8n-v1" / "model.onnx") == card["files"]["model.onnx"]
    for backend in ("onnx", "torch"):
        result = runner.invoke(
            app, ["eval", "-w", str(entry), "--data", str(root / "ds" / "data.yaml"), "--backend", backend, "--json"]
        )
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert out["images"] > 0 and 0.0 <= out["map50"] <= 1.0
    assert attempts == []


def test_offline_guard_refuses_downloads():
    from inspection.inference.offline import OfflineError, ultralytics

    ultralytics()
    from ultralytics.utils import SETTINGS, checks, downloads

    with pytest.raises(OfflineError):
        downloads.safe_download("https://example.invalid/yolov8n.pt", file=Path("/tmp/never"))
    with pytest.raises(OfflineError):
        downloads.attempt_download_asset("yolo-not-here-n.pt")
    assert downloads.is_url("https://example.invalid/x", check=True) is False
    font = checks.check_font("Arial.ttf")
    assert font is not None and Path(font).is_file()
    assert SETTINGS["sync"] is False
    import ultralytics.utils as uu

    assert uu.ONLINE is False


def test_model_and_dataset_classes_must_match(trained, tmp_path):
    from inspection.core.errors import DatasetError, ModelError
    from inspection.ml.datasets.yolo import load_data_yaml
    from inspection.ml.evaluate import evaluate_weights
    from inspection.ml.training import check_classes

    root, _, _ = trained
    part_ds = tmp_path / "part"
    (part_ds / "images" / "val").mkdir(parents=True)
    (part_ds / "data.yaml").write_text("path: .\nval: images/val\nnames: {0: board}\n")
    import shutil

    shutil.copy(next((root / "ds" / "images" / "val").iterdir()), part_ds / "images" / "val" / "a.jpg")
    with pytest.raises(ModelError, match="do not match"):
        evaluate_weights(root / "weights" / "defect-yolov8n", part_ds / "data.yaml")
    with pytest.raises(DatasetError, match="do not match task 'defect'"):
        check_classes("defect", load_data_yaml(part_ds / "data.yaml"))


def test_interrupted_run_resumes_to_the_planned_epochs(tmp_path, monkeypatch):
    from inspection.ml import training
    from inspection.ml.training import TrainRequest, read_history, train

    src = make_deeppcb(tmp_path / "src", boards=6)
    import_deeppcb(src, tmp_path / "ds", val_percent=40)
    req = TrainRequest(
        task="defect",
        data=tmp_path / "ds" / "data.yaml",
        epochs=2,
        imgsz=64,
        batch=4,
        device="cpu",
        model="yolov8n.yaml",
        name="cut",
        runs_dir=tmp_path / "runs",
    )
    real_printer = training._epoch_printer

    def interrupting_printer(total):  # the power goes out after epoch 1 was saved
        inner = real_printer(total)

        def cb(trainer):
            inner(trainer)
            if trainer.epoch == 0:
                raise KeyboardInterrupt

        return cb

    monkeypatch.setattr(training, "_epoch_printer", interrupting_printer)
    with pytest.raises(KeyboardInterrupt):
        train(req)
    assert len(read_history(tmp_path / "runs" / "cut")) == 1
    monkeypatch.setattr(training, "_epoch_printer", real_printer)
    train(TrainRequest(**{**req.__dict__, "resume": True}))
    history = read_history(tmp_path / "runs" / "cut")
    assert [int(h["epoch"]) for h in history] == [1, 2]
