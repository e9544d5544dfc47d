"""The hot-path detection value: one numpy array per field, never a loose tuple."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True, eq=False)
class Detections:
    """Boxes found in one image, in that image's pixel coordinates."""

    xyxy: np.ndarray  # (N, 4) float32: x1, y1, x2, y2
    confidence: np.ndarray  # (N,) float32
    class_id: np.ndarray  # (N,) int64
    class_names: tuple[str, ...]

    @classmethod
    def empty(cls, class_names: tuple[str, ...]) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), class_names)

    def __len__(self) -> int:
        return int(self.confidence.shape[0])

    def filter(self, keep: np.ndarray) -> Detections:
        """A new Detections with the rows selected by a boolean mask or index array."""
        return Detections(self.xyxy[keep], self.confidence[keep], self.class_id[keep], self.class_names)

    def boxes_json(self) -> list[dict[str, Any]]:
        """``[{"xyxy": [...], "confidence": c, "class_name": n}]`` with rounded numbers."""
        return [
            {
                "xyxy": [round(float(v), 1) for v in box],
                "confidence": round(float(c), 4),
                "class_name": self.class_names[int(k)],
            }
            for box, c, k in zip(self.xyxy, self.confidence, self.class_id, strict=True)
        ]


class Detector(Protocol):
    """One interface for every backend: images in (BGR, HxWx3 uint8), detections out."""

    class_names: tuple[str, ...]
    imgsz: tuple[int, int]
    provider: str  # where inference runs, e.g. CPUExecutionProvider or torch:cpu

    def detect(self, images: list[np.ndarray]) -> list[Detections]: ...
