"""``twinspect eval``: score weights on a dataset split with :mod:`inspection.ml.metrics`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspection.core.errors import DatasetError, ModelError
from inspection.inference.models import Backend, PrecisionChoice, load_detector, require_input
from inspection.inference.nms import DEFECT_MERGE_IOU
from inspection.ml.datasets.yolo import load_data_yaml
from inspection.ml.images import read_image
from inspection.ml.metrics import DetectionMetrics

# Low confidence for AP (the whole precision/recall curve), NMS IoU as in Ultralytics' val.
EVAL_CONF = 0.001
EVAL_IOU = 0.6
BATCH = 8


@dataclass(frozen=True)
class EvalResult:
    weights: Path
    split: str
    metrics: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """Rounded headline numbers for model cards and the CLI."""
        m = self.metrics

        def r(v: float) -> float | None:
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 4)

        return {
            "images": m["images"],
            "instances": m["instances"],
            "conf": m["conf"],
            "map50": r(m["map50"]),
            "map50_95": r(m["map50_95"]),
            "precision": r(m["precision"]),
            "recall": r(m["recall"]),
            "f1": r(m["f1"]),
            "deeppcb_fscore": r(m["deeppcb"]["fscore"]),
            "deeppcb_precision": r(m["deeppcb"]["precision"]),
            "deeppcb_recall": r(m["deeppcb"]["recall"]),
            "deeppcb_best_fscore": r(m["deeppcb"]["best"]["fscore"]),
            "deeppcb_best_conf": m["deeppcb"]["best"]["conf"],
            "deeppcb_merge_iou": m["deeppcb"]["merge_iou"],
            "per_class_ap50": {k: r(v["ap50"]) for k, v in m["per_class"].items()},
            "per_class_ap50_95": {k: r(v["ap50_95"]) for k, v in m["per_class"].items()},
        }


def evaluate_weights(
    weights: Path,
    data: Path,
    split: str = "val",
    conf: float = 0.25,
    backend: Backend | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it,
    precision: PrecisionChoice = "fp32",
    merge_iou: float = DEFECT_MERGE_IOU,
) -> EvalResult:
    """Run the model over every image of ``split`` and compute all metrics (a registry entry's fp32
    file unless ``precision`` says int8 or auto, the card's serving choice). mAP ranks the class-aware
    NMS's boxes, as Ultralytics does; the DeepPCB F counts what is served (``merge_iou``: one label per
    place, the defect model's serving setting)."""
    if not 0.0 <= conf <= 1.0:
        raise ModelError(f"conf: must be between 0 and 1, got {conf}")
    spec = load_data_yaml(data)
    images = spec.images(split)
    if not images:
        raise DatasetError(f"{spec.split_dir(split)}: split '{split}' has no images")
    require_input(weights, spec.input, f"dataset {spec.yaml_path}")
    detector = load_detector(weights, conf=EVAL_CONF, iou=EVAL_IOU, backend=backend, precision=precision)
    if detector.class_names != spec.names:
        raise ModelError(
            f"{weights}: model classes {list(detector.class_names)} do not match "
            f"dataset {spec.yaml_path} {list(spec.names)}"
        )
    metrics = DetectionMetrics(spec.names, conf=conf, merge_iou=merge_iou)
    batches = [images[i : i + BATCH] for i in range(0, len(images), BATCH)]
    for batch in progress(batches):
        frames = [read_image(p) for p in batch]
        for path, frame, det in zip(batch, frames, detector.detect(frames), strict=True):
            gt_xyxy, gt_cls = spec.read_labels(path, (frame.shape[1], frame.shape[0]))
            metrics.add(det.xyxy, det.confidence, det.class_id, gt_xyxy, gt_cls)
    return EvalResult(weights=Path(weights), split=split, metrics=metrics.result())
