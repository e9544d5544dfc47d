"""``twinspect retrain --line L`` end to end through the CLI: dataset version, training, registration, gate, shadow.

One real run on a reference line (the shipped default, v3, is active): QA's reviewed boards and a
tiny reference base dataset (4 boards) -> 1 epoch from v3's weights -> v4 registered with its card,
ONNX and INT8 files -> the gate -> v4 in shadow beside v3.

Which way the gate goes is fixed, not left to a 1-epoch model: the config opens its margins
(validation metrics down to 0, any class recall, any reviewed rates), so it refuses only a
candidate it cannot measure or whose exports do not answer like its weights (export parity keeps
its default bounds: measured here, ONNX vs PyTorch 0 px / 0.0 and INT8 vs ONNX ~1 px / ~0.02,
against 2 px / 0.05 and 8 px / 0.2). The gate scores each class's recall on the base validation
split and refuses a class without instances there (``reference_base``'s two validation boards
hold no short and no spur), so the base here is 4 boards whose validation pair holds all six classes.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import pytest
import yaml

from inspection.core.classes import DEEPPCB_CLASSES
from inspection.ml.datasets.yolo import load_data_yaml
from tests.api.conftest import Populated, add_reference_inspections
from tests.api.test_retrain import _review
from tests.cli import run_cli
from tests.conftest import make_deeppcb

pytestmark = pytest.mark.slow  # a training, an export, a quantization and two models scored: ~2 min on 2 busy cores

OPEN_GATE = {"margin": 1.0, "class_recall_floor": 0.0, "false_reject_margin": 1.0, "miss_margin": 1.0}


@pytest.fixture(scope="module")
def covering_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny reference base dataset (4 boards: 4 training images, 2 validation ones) whose validation
    split holds every class (seed 15 of make_deeppcb draws them there)."""
    from inspection.ml.datasets.deeppcb import import_deeppcb

    root = tmp_path_factory.mktemp("ref-base-all-classes")
    import_deeppcb(make_deeppcb(root / "src", boards=4, seed=15), root / "ds", val_percent=50, input_kind="reference")
    card = json.loads((root / "ds" / "card.json").read_text())
    assert all(card["splits"]["val"]["boxes_per_class"].values()), card["splits"]["val"]
    return root / "ds" / "data.yaml"


def link_model(folder: Path, registry: Path) -> Path:
    """A registry entry that is ``folder`` (its files linked, not copied)."""
    entry = registry / folder.name
    entry.mkdir(parents=True)
    for f in folder.iterdir():
        (entry / f.name).symlink_to(f)
    return entry


def test_retrain_writes_the_dataset_trains_registers_gates_and_puts_the_candidate_in_shadow(
    populated: Populated, tmp_path: Path, covering_base: Path, reference_model: Path
):
    data = tmp_path  # the populated app's data dir: twinspect.db, evidence/, goldens/
    ref = add_reference_inspections(populated.services)
    aligned = populated.store.get(ref.aligned_id)
    opened = next(b for b in aligned.boxes if b.class_name == "open")
    _review(populated, ref.aligned_id, action="reject", box_id=opened.id)  # QA: the open is no defect ...
    _review(populated, ref.aligned_id, action="add_box", class_name="spur", xyxy=[10.0, 20.0, 58.0, 44.0])  # ...
    _review(populated, ref.unaligned_id, action="confirm")  # not registered to its golden: left out
    _review(populated, str(uuid.UUID(int=1)), action="confirm")  # a plain inspection of line-1: no golden, left out

    weights = tmp_path / "weights"
    link_model(reference_model, weights)  # v3, the shipped reference model
    config = tmp_path / "twinspect.yaml"
    config.write_text(yaml.safe_dump({"delivery": {"gate": OPEN_GATE}}))
    common = ["--line", "line-1", "--data-dir", str(data), "--weights-dir", str(weights), "--config", str(config)]
    r = run_cli("models", "activate", "defect-yolov8n:3", "--reason", "the shipped default", *common)
    assert r.returncode == 0, r.stderr

    r = run_cli("retrain", "--dry-run", "--data", str(covering_base), "--imgsz", "320", *common)
    assert r.returncode == 0, r.stderr
    assert "image size 320, batch 16, device cpu" in r.stdout and not (data / "datasets").exists()
    r = run_cli("retrain", "--data", str(covering_base), "--imgsz", "100", *common)
    assert r.returncode == 2 and r.stdout == "" and "--imgsz: must be a multiple of 32" in r.stderr, r.stderr

    started = time.monotonic()
    r = run_cli("retrain", "--data", str(covering_base), "--epochs", "1", "--batch", "8", *common, timeout=540)
    took = time.monotonic() - started
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "reviewed inspections: 1 (fail 1; 0 corrected by QA" in out  # the verdict stays fail: no correction
    assert "1 without their golden image and 1 the engine could not align, left out" in out
    assert "train 1 epochs resuming from" in out and "image size 640, batch 8, device cpu" in out
    for step in ("step 1: dataset", "step 2: trained", "step 3-4: evaluated", "step 5: defect-yolov8n:4 passed"):
        assert re.search(rf"^{step}.* \(\d+\.\d s\)$", out, re.M), (step, out)
    assert re.search(r"^step 6: defect-yolov8n:4 in shadow on line line-1;.* \(\d+\.\d s\)$", out, re.M), out

    # step 1: the dataset version holds the reviewed board, as the model saw it, with its boxes after review
    (version,) = (data / "datasets").glob("retrain-line-1-*")
    card = json.loads((version / "card.json").read_text())
    assert (card["input"], card["line_id"], card["reviewed_inspections"]) == ("reference", "line-1", 1)
    assert (card["without_golden"], card["alignment_failed"]) == (1, 1)
    spec, base = load_data_yaml(version / "data.yaml"), load_data_yaml(covering_base)
    assert [p.name for p in spec.images("train") if p.name.startswith("qa-")] == [f"qa-{ref.aligned_id}.png"]
    assert len(spec.images("train")) == len(base.images("train")) + 1
    assert len(spec.images("val")) == len(base.images("val")) == 2
    rows = (version / "labels" / "train" / f"qa-{ref.aligned_id}.txt").read_text().split("\n")
    assert sorted(DEEPPCB_CLASSES[int(row.split()[0])] for row in rows if row) == ["short", "spur"]

    # steps 2-4: trained from v3 on that version, a new version in the registry with its card and exports
    entry = weights / "defect-yolov8n-v4"
    new = json.loads((entry / "card.json").read_text())
    assert (new["name"], new["version"], new["input"]) == ("defect-yolov8n", 4, "reference")
    assert Path(new["training_data"]["yaml"]).resolve() == (version / "data.yaml").resolve()
    vm = new["val_metrics"]
    assert (vm["split"], vm["images"]) == ("val", 2) and vm["instances"] == 8
    assert all(isinstance(vm[k], float) for k in ("map50", "deeppcb_fscore"))
    assert isinstance(new["int8"]["val_metrics"]["map50"], float) and new["serving"]["precision"] in ("fp32", "int8")
    for f in ("model.pt", "model.onnx", "model.int8.onnx"):
        assert (entry / f).is_file() and (entry / f).stat().st_size > 1_000_000, f
    assert (data / "runs" / version.name / "weights" / "best.pt").is_file()

    # steps 5-6: the gate's figures were printed, then v4 went into shadow beside v3 (which still serves)
    assert re.search(r"^onnx vs pt: unmatched boxes\s+None\s+0\.0000\s+== 0$", out, re.M), out  # parity ran
    assert "val recall spur" in out and "reviewed inspections of the line replayed: 1" in out and "FAILED" not in out
    r = run_cli("models", "status", "--json", *common)
    assert r.returncode == 0, r.stderr
    states = {v["version"]: v["state"] for v in json.loads(r.stdout)["versions"]}
    assert states == {3: "active", 4: "shadow"}
    r = run_cli("models", "history", "--json", *common)
    last = json.loads(r.stdout)[0]
    assert (last["action"], last["model"]) == ("shadow_started", "defect-yolov8n:4"), last
    assert "passed the gate" in last["why"]
    print(f"retrain, 1 epoch, end to end: {took:.0f} s")
