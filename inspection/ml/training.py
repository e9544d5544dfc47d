"""``twinspect train``: Ultralytics training with progress lines, resume and registration.

Runs live under ``<data dir>/runs/<name>`` (outside git), so an interrupted run can be
resumed by name from its ``last.pt``; the finished (or a stopped) run is registered
into ``weights/`` by :mod:`inspection.ml.registry`.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from inspection.core.classes import DEEPPCB_CLASSES, PART_CLASSES
from inspection.core.errors import DatasetError, ModelError
from inspection.inference.offline import ultralytics
from inspection.ml.datasets.yolo import DatasetSpec, load_data_yaml

log = logging.getLogger(__name__)

Task = Literal["defect", "part"]
TASK_CLASSES: dict[str, tuple[str, ...]] = {"defect": DEEPPCB_CLASSES, "part": PART_CLASSES}


@dataclass(frozen=True)
class TrainRequest:
    """Everything one training run needs; built by the CLI from its options."""

    task: Task
    data: Path
    epochs: int
    imgsz: int
    batch: int
    device: str
    model: str
    name: str
    runs_dir: Path
    workers: int = 2
    patience: int = 100
    resume: bool = False
    seed: int = 0
    lr0: float | None = None  # initial learning rate (Ultralytics default 0.01); lower to fine-tune
    close_mosaic: int | None = None  # last epochs without mosaic (Ultralytics default 10)
    warmup_epochs: float | None = None  # learning-rate warm-up (Ultralytics default 3; 0 to fine-tune)
    optimizer: str = "auto"  # Ultralytics' auto picks the optimizer and lr0 itself (lr0 needs an explicit one)


def check_classes(task: Task, spec: DatasetSpec) -> None:
    """The dataset's classes must be the task's classes, in order."""
    expected = TASK_CLASSES[task]
    if spec.names != expected:
        raise DatasetError(
            f"{spec.yaml_path}: classes {list(spec.names)} do not match task '{task}' (expects {list(expected)})"
        )


# Augmentations that treat the three planes as colour (HSV jitter, BGR<->RGB swaps). A
# reference image's planes are data (board, golden, difference): they must reach the
# network exactly as composed, as they do at serving time.
PLANE_MIXING_OFF: dict[str, float] = {"hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0, "bgr": 0.0}


def augmentation(spec: DatasetSpec) -> dict[str, float]:
    """Ultralytics augmentation overrides for a dataset's input kind."""
    return dict(PLANE_MIXING_OFF) if spec.input == "reference" else {}


def run_dir(req: TrainRequest) -> Path:
    return req.runs_dir / req.name


def _epoch_printer(total: int) -> Any:
    started = time.monotonic()

    def on_fit_epoch_end(trainer: Any) -> None:
        m = trainer.metrics
        epoch = trainer.epoch + 1
        if epoch > total:  # the final validation of best.pt reports again; not an epoch
            return
        elapsed = time.monotonic() - started
        print(
            f"[twinspect] epoch {epoch}/{total}  mAP50 {m.get('metrics/mAP50(B)', 0):.3f}  "
            f"mAP50-95 {m.get('metrics/mAP50-95(B)', 0):.3f}  "
            f"P {m.get('metrics/precision(B)', 0):.3f}  R {m.get('metrics/recall(B)', 0):.3f}  "
            f"elapsed {elapsed / 60:.1f} min",
            flush=True,
        )

    return on_fit_epoch_end


def train(req: TrainRequest) -> Path:
    """Train (or resume) one run and return its folder.

    Raises DatasetError / ModelError with a one-line reason for bad input.
    """
    if req.epochs < 1:
        raise ModelError(f"epochs: must be at least 1, got {req.epochs}")
    if req.imgsz < 32 or req.imgsz % 32:
        raise ModelError(f"imgsz: must be a multiple of 32 and at least 32, got {req.imgsz}")
    ul = ultralytics()
    folder = run_dir(req)
    last = folder / "weights" / "last.pt"
    if req.resume:
        if not last.is_file():
            raise ModelError(f"{last}: nothing to resume (no last.pt in run '{req.name}')")
        model = ul.YOLO(str(last))
        model.add_callback("on_fit_epoch_end", _epoch_printer(req.epochs))
        model.train(resume=True)
        return folder
    spec = load_data_yaml(req.data)
    check_classes(req.task, spec)
    if folder.exists() and last.exists():
        raise ModelError(
            f"{folder}: run '{req.name}' already exists; use --resume to continue it or --name for a new run"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    data_yaml = spec.ultralytics_yaml(folder.parent / f"{req.name}.data.yaml")
    model = ul.YOLO(req.model)
    model.add_callback("on_fit_epoch_end", _epoch_printer(req.epochs))
    model.train(
        data=str(data_yaml),
        epochs=req.epochs,
        imgsz=req.imgsz,
        batch=req.batch,
        device=req.device,
        project=str(req.runs_dir),
        name=req.name,
        exist_ok=True,
        workers=req.workers,
        patience=req.patience,
        seed=req.seed,
        deterministic=False,
        optimizer=req.optimizer,
        plots=True,
        verbose=False,
        **augmentation(spec),
        **{
            k: v
            for k, v in (("lr0", req.lr0), ("close_mosaic", req.close_mosaic), ("warmup_epochs", req.warmup_epochs))
            if v is not None
        },
    )
    return folder


def read_history(folder: Path) -> list[dict[str, float]]:
    """Epoch-by-epoch metrics of a run (Ultralytics' results.csv), as numbers."""
    path = folder / "results.csv"
    if not path.is_file():
        return []
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    keep = {
        "epoch": "epoch",
        "metrics/mAP50(B)": "mAP50",
        "metrics/mAP50-95(B)": "mAP50-95",
        "metrics/precision(B)": "precision",
        "metrics/recall(B)": "recall",
        "train/box_loss": "train_box_loss",
        "val/box_loss": "val_box_loss",
        "time": "time_s",
    }
    out = []
    for row in rows:
        row = {k.strip(): v for k, v in row.items()}
        out.append({new: round(float(row[old]), 5) for old, new in keep.items() if old in row})
    return out
