"""The alternative backend: Ultralytics' own PyTorch ``predict`` (imports torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inspection.core.detections import Detections
from inspection.core.errors import ModelError
from inspection.inference.offline import ultralytics


class UltralyticsDetector:
    """YOLOv8 through ``YOLO(weights).predict``; same interface as OnnxDetector."""

    def __init__(
        self,
        path: Path,
        conf: float = 0.25,
        iou: float = 0.45,
        max_det: int = 300,
        device: str = "cpu",
        imgsz: int | tuple[int, int] | None = None,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        ul = ultralytics()
        try:
            self.model = ul.YOLO(str(path), task="detect")
        except Exception as exc:  # Ultralytics raises many types for a bad file
            raise ModelError(f"{path}: not a YOLO model ({exc.__class__.__name__}: {str(exc)[:100]})") from exc
        names = self.model.names
        self.class_names = tuple(str(names[k]) for k in sorted(names))
        size = imgsz or int(getattr(self.model, "overrides", {}).get("imgsz", 640) or 640)
        self.imgsz = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.path, self.conf, self.iou, self.max_det, self.device = path, conf, iou, max_det, device
        self.provider = f"torch:{device}"

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        if not images:
            return []
        # rect=False: the same square letterbox as the ONNX path (Ultralytics' predict default pads
        # a 16:9 frame to a rectangle instead), so both backends see identical pixels
        results = self.model.predict(
            images,
            imgsz=list(self.imgsz),
            conf=self.conf,
            iou=self.iou,
            rect=False,
            max_det=self.max_det,
            device=self.device,
            verbose=False,
        )
        out = []
        for r in results:
            b = r.boxes
            out.append(
                Detections(
                    b.xyxy.cpu().numpy().astype(np.float32),
                    b.conf.cpu().numpy().astype(np.float32),
                    b.cls.cpu().numpy().astype(np.int64),
                    self.class_names,
                )
            )
        return out
