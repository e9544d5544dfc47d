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


# The live frame's board boxes, by the board's verdict (BGR): what the reviewer and the line lead
# read at a glance; a board not inspected yet is grey, a detection not tracked yet thin grey.
VERDICT_BGR = {
    "pass": (60, 170, 30),
    "fail": (40, 40, 220),
    "uncertain": (0, 190, 250),
    None: (190, 190, 190),
}


def draw_boards(
    image: np.ndarray,
    boards: list[tuple[tuple[float, float, float, float], str | None, str]],
    thickness: int = 3,
) -> np.ndarray:
    """A BGR copy of ``image`` with each board's box in its verdict's colour: (xyxy, verdict or None, label)."""
    out = as_bgr(image).copy()
    for (x1, y1, x2, y2), verdict, label in boards:
        color = VERDICT_BGR.get(verdict, VERDICT_BGR[None])
        p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(out, p1, p2, color, thickness)
        if label:
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
            ty = max(p1[1] - 2, th + 6)
            cv2.rectangle(out, (p1[0], ty - th - 6), (p1[0] + tw + 6, ty), color, -1)
            cv2.putText(out, label, (p1[0] + 3, ty - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out
