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


TYPE_LABELS = ("<str>", "<int>", "<float>", "<path>", "<bool>")


def _help(*cmd: str) -> str:
    r = run_cli(*cmd, "--help", env={"COLUMNS": "140"})
    assert r.returncode == 0 and "Usage" in r.stdout, (cmd, r.stderr)
    for label in TYPE_LABELS:
        assert label not in r.stdout, (cmd, label, r.stdout)
    return r.stdout


def test_every_command_has_help():
    # the top level, train, eval, predict and config show: test_help_type_labels_read_naturally
    for cmd in (
        ["export"],
        ["datasets", "import", "deeppcb"],
        ["datasets", "synth-line"],
        ["models", "register"],
        ["config", "check"],
    ):
        _help(*cmd)


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


# -- issue 12, items 9 and 13: click's own errors, eval before an import, version, help, config ----------------


def test_click_errors_are_one_line_and_exit_2():
    for args, words in (
        (("eval",), "Missing option '--weights'"),
        (("eval", "-w", "weights/defect-yolov8n", "--conf", "abc"), "Invalid value for '--conf'"),
        (("no-such-command",), "No such command 'no-such-command'"),
        (("predict", "--colour", "x"), "No such option: --colour"),
    ):
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        line = _error_line(r.stderr)
        assert r.stderr.strip() == line, r.stderr  # nothing else: no usage block, no 'Try ...' line
        assert words in line and "--help" in line, line


def test_eval_before_the_dataset_is_imported_says_how_to_import_it():
    # the README's own line, on a checkout where datasets/deeppcb is described (data.yaml, card) but not imported
    r = run_cli("eval", "--weights", "weights/defect-yolov8n")
    assert r.returncode == 2
    line = _error_line(r.stderr)
    assert "Traceback" not in r.stderr
    assert "not imported yet" in line and "twinspect datasets import deeppcb" in line, line


def test_eval_shows_its_progress(deeppcb_factory, plain_model, tmp_path):
    from inspection.ml.datasets.deeppcb import import_deeppcb

    import_deeppcb(deeppcb_factory(boards=6), tmp_path / "ds", val_percent=50)
    r = run_cli("eval", "-w", str(plain_model), "--data", str(tmp_path / "ds" / "data.yaml"), "--json")
    assert r.returncode == 0, r.stderr
    steps = [ln for ln in r.stderr.splitlines() if ln.startswith("eval val: ")]
    assert steps and steps[-1].endswith("(100%)"), r.stderr
    total = int(steps[-1].split(" of ")[1].split()[0])
    assert f"{total} of {total} images" in steps[-1]
    assert r.stdout.count("\n") == 1  # the JSON line alone on stdout


def test_version():
    from importlib.metadata import version

    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"twinspect {version('twinspect')}"


def test_help_type_labels_read_naturally():
    # the rest of the commands: test_every_command_has_help (each help is read once, by one of the two)
    for cmd in ([], ["eval"], ["predict"], ["config", "show"]):
        _help(*cmd)
    train = _help("train")
    assert " N " in train and " PATH " in train and " TEXT " in train


def test_config_check_refuses_weights_that_do_not_exist(tmp_path):
    cfg = tmp_path / "twinspect.yaml"
    cfg.write_text(f"models:\n  defect:\n    weights: {tmp_path / 'no-such-model'}\n")
    r = run_cli("config", "check", str(cfg))
    assert r.returncode == 2
    assert _error_line(r.stderr) == (
        f"twinspect: error: {cfg}: models.defect.weights: {tmp_path / 'no-such-model'}: "
        "no such model folder or weights file"
    )
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    cfg.write_text(f"models:\n  part:\n    weights: {folder}\n")
    r = run_cli("config", "check", str(cfg))
    assert r.returncode == 2 and "models.part.weights" in r.stderr and "not a registered model" in r.stderr


def test_an_environment_error_is_blamed_on_the_variable_not_the_file(tmp_path):
    cfg = tmp_path / "twinspect.yaml"
    cfg.write_text("log_level: INFO\n")
    r = run_cli("config", "check", str(cfg), env={"TWINSPECT_MODELS__DEFECT__CONF": "abc"})
    assert r.returncode == 2
    line = _error_line(r.stderr)
    assert line.startswith("twinspect: error: environment TWINSPECT_MODELS__DEFECT__CONF: models.defect.conf: "), line
    assert str(cfg) not in line


def test_config_show_prints_each_field_with_its_description():
    import yaml

    r = run_cli("config", "show")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.strip().startswith("conf:"))
    assert lines[i - 1].strip() == "# Minimum confidence of a kept box."
    assert "# Where runs, the database, evidence images and the event log live." in lines
    assert set(yaml.safe_load(r.stdout)) >= {"data_dir", "models", "line", "storage", "server", "sync"}
