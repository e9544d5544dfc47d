"""Retraining from QA: the plan (dry run) and the dataset version; no training here (bench/ times a full run)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from inspection.core.classes import DEEPPCB_CLASSES
from inspection.ml.datasets.yolo import load_data_yaml
from inspection.ml.retrain import plan_retrain, write_dataset
from tests.api.conftest import Populated
from tests.api.test_model_delivery import SHIPPED, add_version
from tests.cli import run_cli
from tests.conftest import make_deeppcb


@pytest.fixture(scope="module")
def base_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inspection.ml.datasets.deeppcb import import_deeppcb

    root = tmp_path_factory.mktemp("base")
    import_deeppcb(make_deeppcb(root / "src", boards=6), root / "ds", val_percent=50)
    return root / "ds" / "data.yaml"


def active_folder(tmp_path: Path) -> Path:
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


def test_dry_run_prints_the_plan_and_stops_before_training(tmp_path, base_data):
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
