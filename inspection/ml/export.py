"""``twinspect export``: PyTorch weights -> ONNX, then a parity check against PyTorch."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from inspection.core.detections import Detector
from inspection.core.errors import ModelError
from inspection.inference.nms import box_iou

ImageSize = int | tuple[int, int]  # a square side, or (height, width)


def parse_imgsz(text: str) -> ImageSize:
    """'640' (square) or '192x320' (height x width), each a multiple of 32."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or any(p < 32 or p % 32 for p in parts):
        raise ModelError(f"imgsz: expected a multiple of 32 such as 640, or HEIGHTxWIDTH such as 192x320, got {text!r}")
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def _hw(imgsz: ImageSize) -> tuple[int, int]:
    return (imgsz, imgsz) if isinstance(imgsz, int) else imgsz


def _fix_spatial_dims(path: Path, imgsz: ImageSize) -> None:
    """Keep only the batch dimension dynamic: fixed H and W let ORT/TensorRT plan better."""
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for i, size in zip((2, 3), _hw(imgsz), strict=True):
        dims[i].Clear()
        dims[i].dim_value = size
    onnx.save(model, str(path))


def _set_input_kind(path: Path, input_kind: str) -> None:
    """Record in the ONNX metadata which input the model expects (see inspection.inference.models.model_input)."""
    from inspection.inference.models import INPUT_METADATA_KEY

    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props[INPUT_METADATA_KEY] = input_kind
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(path))


def export_onnx(
    weights: Path,
    imgsz: ImageSize = 640,
    half: bool = False,
    dynamic_batch: bool = False,
    device: str = "cpu",
    opset: int | None = None,
    input_kind: str | None = None,
) -> Path:
    """Export a .pt to ``<same stem>.onnx`` beside it and return that path.

    With ``dynamic_batch`` the batch dimension is dynamic (one session serves batches of
    any size) while height and width stay fixed at ``imgsz``. A rectangular ``imgsz``
    (height, width) fits frames of that aspect ratio with no wasted padding.
    """
    from inspection.inference.offline import relayed_logs, ultralytics

    weights = Path(weights)
    if weights.suffix != ".pt" or not weights.is_file():
        raise ModelError(f"{weights}: export needs an existing PyTorch .pt file")
    if half and device == "cpu":
        raise ModelError("half: FP16 export needs a GPU (--device 0); ONNX FP16 from CPU is not supported")
    ul = ultralytics()
    with relayed_logs():  # Ultralytics' banner, colours and hints at its own CLI go to our debug log
        try:
            model = ul.YOLO(str(weights), task="detect")
        except Exception as exc:
            raise ModelError(f"{weights}: not a YOLO model ({exc.__class__.__name__})") from exc
        out = Path(
            model.export(
                format="onnx",
                imgsz=list(_hw(imgsz)),
                quantize=16 if half else None,
                dynamic=dynamic_batch,
                simplify=True,
                device=device,
                opset=opset,
                verbose=False,
            )
        )
    target = weights.with_suffix(".onnx")
    if out.resolve() != target.resolve():
        shutil.move(str(out), target)
    if dynamic_batch:
        _fix_spatial_dims(target, imgsz)
    if input_kind is not None:
        _set_input_kind(target, input_kind)
    return target


@dataclass(frozen=True)
class Parity:
    images: int
    boxes_torch: int
    boxes_onnx: int
    unmatched: int
    max_box_diff_px: float
    max_conf_diff: float


def check_parity(pt: Path, onnx_path: Path, images: list[np.ndarray], conf: float = 0.25) -> Parity:
    """Run both backends on the same images and compare boxes one to one."""
    from inspection.inference.offline import relayed_logs
    from inspection.inference.onnx_detector import OnnxDetector
    from inspection.inference.torch_detector import UltralyticsDetector

    ours = OnnxDetector(onnx_path, conf=conf)
    with relayed_logs():
        ref = UltralyticsDetector(pt, conf=conf, imgsz=ours.imgsz)
        return _compare(ref, ours, images)


def _compare(ref: Detector, ours: Detector, images: list[np.ndarray]) -> Parity:
    max_box, max_conf, unmatched, n_ref, n_ours = 0.0, 0.0, 0, 0, 0
    for img in images:
        a = ref.detect([img])[0]
        b = ours.detect([img])[0]
        n_ref, n_ours = n_ref + len(a), n_ours + len(b)
        if not len(a) or not len(b):
            unmatched += abs(len(a) - len(b))
            continue
        iou = box_iou(a.xyxy, b.xyxy) * (a.class_id[:, None] == b.class_id[None, :])
        best = iou.argmax(axis=1)
        ok = iou[np.arange(len(a)), best] > 0.5
        unmatched += int((~ok).sum()) + max(0, len(b) - int(ok.sum()))
        if ok.any():
            max_box = max(max_box, float(np.abs(a.xyxy[ok] - b.xyxy[best[ok]]).max()))
            max_conf = max(max_conf, float(np.abs(a.confidence[ok] - b.confidence[best[ok]]).max()))
    return Parity(len(images), n_ref, n_ours, unmatched, max_box, max_conf)
