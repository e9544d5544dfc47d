"""Letterbox: resize keeping the aspect ratio and pad, exactly as Ultralytics does.

The same padding rule (centre, ``round(d - 0.1)`` / ``round(d + 0.1)``, grey 114, bilinear
resize) as Ultralytics' ``LetterBox`` keeps our ONNX path's numbers identical to its
``predict`` on the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How one image was mapped into the model input: scale, then offset."""

    scale: float
    pad_x: float
    pad_y: float
    src_w: int
    src_h: int

    def to_source(self, xyxy: np.ndarray) -> np.ndarray:
        """Map boxes from model-input pixels back to source pixels, clipped to the image."""
        out = xyxy.copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, self.src_w)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, self.src_h)
        return out


def fit(h: int, w: int, shape: tuple[int, int]) -> tuple[Letterbox, int, int]:
    """Where an h x w image goes in ``shape`` (height, width): the mapping, and its resized width and height.

    The padding left of and above the image is ``round(d - 0.1)`` of the centred offset ``d``, as
    Ultralytics pads; the GPU letterbox (``torch_detector``) places its images by the same rule.
    """
    new_h, new_w = shape
    r = min(new_h / h, new_w / w)
    rw, rh = round(w * r), round(h * r)
    dw, dh = (new_w - rw) / 2, (new_h - rh) / 2
    return Letterbox(scale=r, pad_x=round(dw - 0.1), pad_y=round(dh - 0.1), src_w=w, src_h=h), rw, rh


def letterbox(image: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Fit ``image`` (HxWx3) into ``shape`` (height, width); returns the padded image."""
    h, w = image.shape[:2]
    lb, rw, rh = fit(h, w, shape)
    if (w, h) != (rw, rh):
        image = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)
    top, left = int(lb.pad_y), int(lb.pad_x)
    bottom, right = shape[0] - rh - top, shape[1] - rw - left
    if top or bottom or left or right:
        image = cv2.copyMakeBorder(
            image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE, PAD_VALUE, PAD_VALUE)
        )
    return image, lb


def to_tensor(images: list[np.ndarray], dtype: type = np.float32) -> np.ndarray:
    """Stack letterboxed BGR images into one NCHW RGB tensor scaled to 0..1."""
    batch = np.stack(images)[..., ::-1].transpose(0, 3, 1, 2)
    out: np.ndarray = np.ascontiguousarray(batch, dtype=dtype)
    out *= 1 / 255.0
    return out


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Accept grey (HxW or HxWx1), BGR or BGRA images; return HxWx3 BGR."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image
