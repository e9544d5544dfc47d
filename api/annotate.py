"""Draw detections on an image (evidence images, demo output, the live view)."""

from __future__ import annotations

import cv2
import numpy as np

from inspection.core.detections import Detections
from inspection.inference.preprocess import as_bgr

# One fixed colour per class id (BGR), readable on black and white boards.
PALETTE = (
    (56, 56, 255),
    (151, 157, 255),
    (31, 112, 255),
    (29, 178, 255),
    (49, 210, 207),
    (10, 249, 72),
    (23, 204, 146),
    (134, 219, 61),
    (52, 147, 26),
    (187, 212, 0),
)


def draw(image: np.ndarray, det: Detections, thickness: int = 2) -> np.ndarray:
    """A BGR copy of ``image`` (BGR or grey, e.g. a board registered to its golden) with each box,
    its class and confidence."""
    out = as_bgr(image).copy()
    for (x1, y1, x2, y2), conf, k in zip(det.xyxy.astype(int), det.confidence, det.class_id, strict=True):
        color = PALETTE[int(k) % len(PALETTE)]
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        label = f"{det.class_names[int(k)]} {conf:.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        ty = max(y1, th + 4)
        cv2.rectangle(out, (x1, ty - th - 4), (x1 + tw + 4, ty), color, -1)
        cv2.putText(out, label, (x1 + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out
