"""Retraining from QA: the plan (dry run) and the dataset version; no training here (bench/ times a full run)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from inspection.core.classes import DEEPPCB_CLASSES
from inspection.core.errors import DatasetError
from inspection.core.outcome import Outcome
from inspection.inference.cards import resolve_model_dir
from inspection.ml.datasets.yolo import load_data_yaml
from inspection.ml.retrain import plan_retrain, write_dataset
from inspection.reference.planes import BOARD, DIFF, GOLDEN, compose, gray
from inspection.store import BoxRecord, encode_jpeg
from tests.api.conftest import (
    GOLDEN_RECIPE,
    OPEN_CUT,
    SHORT_BAR,
    T0,
    Populated,
    add_reference_inspections,
    inspected_draft,
    reference_record,
)
from tests.api.test_model_delivery import SHIPPED, add_version
from tests.cli import run_cli
from tests.conftest import make_deeppcb


@pytest.fixture(scope="module")
def base_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inspection.ml.datasets.deeppcb import import_deeppcb

    root = tmp_path_factory.mktemp("base")
    import_deeppcb(make_deeppcb(root / "src", boards=6), root / "ds", val_percent=50)
    return root / "ds" / "data.yaml"


@pytest.fixture(scope="module")
def reference_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base dataset of 3-plane reference images (twinspect datasets import deeppcb --input reference)."""
    from inspection.ml.datasets.deeppcb import import_deeppcb

    root = tmp_path_factory.mktemp("ref-base")
    import_deeppcb(make_deeppcb(root / "src", boards=4), root / "ds", val_percent=50, input_kind="reference")
    return root / "ds" / "data.yaml"


def active_folder(tmp_path: Path, reference: bool = False) -> Path:
    """A registry entry to retrain from: v1's card (plain input), or with ``reference`` v2's kind."""
    if reference:
        folder = add_version(tmp_path / "weights", 2, input="reference")
        (folder / "model.pt").symlink_to(resolve_model_dir(SHIPPED.with_name("defect-yolov8n")) / "model.pt")
        return folder
    folder = add_version(tmp_path / "weights", 1)
    (folder / "model.pt").symlink_to(SHIPPED / "model.pt")
    return folder


def test_the_plan_counts_reviewed_boards_and_the_dataset_holds_them_after_review(
    populated: Populated, tmp_path, base_data
):
    c, qa = populated.client, populated.as_("qa")
    kept, rejected = 4, 10  # line-1 boards the model failed: QA confirms one, rejects the other (a false reject)
    for i, action in ((kept, "confirm"), (rejected, "reject")):
        assert (
            c.post(
                f"/api/v1/inspections/{uuid.UUID(int=i + 1)}/review", json={"action": action}, headers=qa
            ).status_code
            == 200
        )
    store = populated.store
    plan = plan_retrain(store, "line-1", active_folder(tmp_path), tmp_path / "datasets", 5, base_data)
    assert (plan.reviewed, plan.corrected, dict(plan.verdicts)) == (2, 1, {"fail": 1, "pass": 1})
    kept_boxes = [b.class_name for b in store.get(str(uuid.UUID(int=kept + 1))).boxes]
    assert sum(plan.boxes.values()) == len(kept_boxes) > 0  # the rejected board's boxes are not defects any more
    text = "\n".join(plan.lines())
    assert "reviewed inspections: 2 (fail 1, pass 1; 1 corrected by QA" in text and "step 6: shadow" in text
    assert not plan.out.exists()  # a plan writes nothing
    card = write_dataset(plan, store, DEEPPCB_CLASSES)
    spec, base = load_data_yaml(plan.out / "data.yaml"), load_data_yaml(base_data)
    assert len(spec.images("train")) == len(base.images("train")) + 2
    assert len(spec.images("val")) == len(base.images("val"))  # the gate set stays the base validation split
    assert card["reviewed_inspections"] == 2 and card["splits"]["train"]["boxes"] == len(kept_boxes)
    labels = {p.name: p.read_text() for p in (plan.out / "labels" / "train").glob("qa-*.txt")}
    assert sorted(len(t.splitlines()) for t in labels.values()) == [0, len(kept_boxes)]
    assert yaml.safe_load((plan.out / "data.yaml").read_text())["val"] == "images/val"


def test_dry_run_prints_the_plan_and_stops_before_training(tmp_path, base_data, reference_base, plain_model):
    folder = active_folder(tmp_path)
    data = tmp_path / "data"
    common = ["--data-dir", str(data), "--weights-dir", str(folder.parent)]
    r = run_cli("retrain", "--dry-run", *common)
    errors = [x for x in r.stderr.splitlines() if x.startswith("twinspect: error:")]
    assert r.returncode == 2 and len(errors) == 1 and "no active model yet" in errors[0]
    assert run_cli("models", "activate", "defect-yolov8n:1", "--line", "line-1", *common).returncode == 0
    r = run_cli("retrain", "--dry-run", "--data", str(base_data), *common)
    assert r.returncode == 0, r.stderr
    assert "reviewed inspections: 0" in r.stdout and "dry run: stopped before training" in r.stdout
    assert "train 20 epochs resuming from" in r.stdout and not (data / "datasets").exists()
    r = run_cli("retrain", "--dry-run", "--data", str(reference_base), *common)  # a plain model, a reference base
    errors = [x for x in r.stderr.splitlines() if x.startswith("twinspect: error:")]
    assert r.returncode == 2 and len(errors) == 1 and r.stdout == "", r.stderr
    assert "defect-yolov8n:1 takes 'image' input" in errors[0] and f"{reference_base} holds 'reference'" in errors[0]


def _review(populated: Populated, inspection_id: str, **body: object) -> dict:
    r = populated.client.post(f"/api/v1/inspections/{inspection_id}/review", json=body, headers=populated.as_("qa"))
    assert r.status_code == 200, r.text
    return r.json()


def _golden_missing_inspection(populated: Populated, board: np.ndarray) -> str:
    """A reference inspection whose golden file is not in the goldens folder (a sha256 nothing stored)."""
    store = populated.store
    rec = reference_record(
        2,
        store.evidence.put(encode_jpeg(board)),
        board,
        "ab" * 32,
        score=0.95,
        outcome=Outcome.FAIL,
        boxes=(BoxRecord(300.0, 190.0, 346.0, 215.0, 0.9, "short"),),
        reasons=("short 0.90",),
    )
    populated.sync.log.append([inspected_draft(rec, T0 + timedelta(hours=2))], extra=store.adder([rec]))
    return rec.id


def test_a_reference_line_retrains_on_the_planes_the_engine_fed_its_model(
    populated: Populated, tmp_path, reference_base
):
    """The shipped default: the dataset version holds compose(registered board, golden) with the reviewed boxes."""
    ref = add_reference_inspections(populated.services)
    store, recipes = populated.store, populated.services.recipes
    assert recipes is not None
    aligned = store.get(ref.aligned_id)
    short, opened = sorted(aligned.boxes, key=lambda b: b.class_name != "short")
    _review(populated, ref.aligned_id, action="reject", box_id=opened.id)  # QA: the open is no defect ...
    drawn = [10.0, 20.0, 58.0, 44.0]
    _review(populated, ref.aligned_id, action="add_box", class_name="spur", xyxy=drawn)  # ... but a spur was missed
    _review(populated, ref.unaligned_id, action="confirm")  # its evidence is the raw crop: left out
    _review(populated, str(uuid.UUID(int=1)), action="confirm")  # a plain inspection of line-1: no golden
    _review(populated, _golden_missing_inspection(populated, ref.golden), action="confirm")  # golden file gone

    plan = plan_retrain(
        store,
        "line-1",
        active_folder(tmp_path, True),
        tmp_path / "datasets",
        5,
        reference_base,
        goldens=recipes.files.root,
    )
    assert (plan.input_kind, plan.reviewed, plan.without_golden, plan.alignment_failed) == ("reference", 1, 2, 1)
    assert dict(plan.boxes) == {"short": 1, "spur": 1}
    text = "\n".join(plan.lines())
    assert "input reference" in text and "2 without their golden image and 1 the engine could not align" in text
    assert not plan.out.exists()

    card = write_dataset(plan, store, DEEPPCB_CLASSES)
    assert card["input"] == "reference" and (card["without_golden"], card["alignment_failed"]) == (2, 1)
    assert card["reviewed_inspections"] == 1 and card["splits"]["train"]["boxes_per_class"]["spur"] == 1
    spec, base = load_data_yaml(plan.out / "data.yaml"), load_data_yaml(reference_base)
    assert spec.input == "reference" and len(spec.images("train")) == len(base.images("train")) + 1

    image = cv2.imread(str(plan.out / "images" / "train" / f"qa-{ref.aligned_id}.png"), cv2.IMREAD_UNCHANGED)
    golden = recipes.golden(GOLDEN_RECIPE).image  # what the engine's golden book hands the reference stage
    board = gray(cv2.imdecode(np.fromfile(store.evidence.path(aligned.evidence_sha256), np.uint8), cv2.IMREAD_COLOR))
    assert image.shape == (*golden.shape, 3)
    assert np.array_equal(image[:, :, GOLDEN], golden) and np.array_equal(image[:, :, BOARD], board)
    assert np.array_equal(image, compose(board, golden))
    diff = image[:, :, DIFF]  # the pair lines up: the drawn defects stand out, the rest of the board does not
    for x1, y1, x2, y2 in (SHORT_BAR, OPEN_CUT):
        assert diff[y1 + 2 : y2 - 1, x1 + 2 : x2 - 1].mean() > 60
    assert np.median(diff) < 8

    h, w = golden.shape
    rows = sorted((plan.out / "labels" / "train" / f"qa-{ref.aligned_id}.txt").read_text().splitlines())
    expected = sorted(
        f"{DEEPPCB_CLASSES.index(name)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} "
        f"{(y2 - y1) / h:.6f}"
        for x1, y1, x2, y2, name in ((short.x1, short.y1, short.x2, short.y2, "short"), (*drawn, "spur"))
    )
    assert rows == expected  # the rejected open is gone, the drawn spur is in, in the pixels the model sees


def test_a_reference_model_and_a_plain_base_dataset_do_not_mix(tmp_path, base_data, reference_base, populated):
    store = populated.store
    with pytest.raises(DatasetError) as error:
        plan_retrain(store, "line-1", active_folder(tmp_path / "r", True), tmp_path / "ds", 5, base_data)
    text = str(error.value)
    assert "\n" not in text and "defect-yolov8n:2 takes 'reference' input" in text and str(base_data) in text
    with pytest.raises(DatasetError, match="defect-yolov8n:1 takes 'image' input .* holds 'reference' images"):
        plan_retrain(store, "line-1", active_folder(tmp_path / "p"), tmp_path / "ds", 5, reference_base)
