"""The reference-aware model input: a board and its aligned golden board in one image.

A reference model sees three planes instead of a colour image. They are stored and
passed around as an ordinary HxWx3 uint8 array in OpenCV's plane order, so every tool
that handles an image (Ultralytics' loader, our letterbox, ONNX export, INT8
calibration) handles this one unchanged:

    plane 0 (OpenCV "B"): the board, grey, registered to the golden
    plane 1 (OpenCV "G"): the golden board, grey
    plane 2 (OpenCV "R"): |board - golden|

Ultralytics reads images with OpenCV and reverses the planes into the network (BGR ->
RGB); :func:`inspection.inference.preprocess.to_tensor` does the same, so training, export and
serving feed the network the same tensor. Nothing may convert between colour spaces
(Ultralytics' HSV jitter is switched off for reference datasets) and files are PNG,
never JPEG: chroma subsampling would bleed the planes into one another.

:func:`jitter_pair` makes the training pairs imperfect the way a line makes them
imperfect: the golden is shifted, rotated and scaled by a few pixels against the board,
and the board is re-lit and sometimes softened (a warped crop is resampled), so the
model learns that thin misregistration edges along copper are not defects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

InputKind = Literal["image", "reference"]
INPUT_KINDS: tuple[str, ...] = ("image", "reference")
BOARD, GOLDEN, DIFF = 0, 1, 2  # plane index in the stored (OpenCV-order) image


def gray(image: np.ndarray) -> np.ndarray:
    """HxW uint8 grey of a grey, BGR or BGRA image."""
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[:, :, 0]
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)


def compose(board: np.ndarray, golden: np.ndarray) -> np.ndarray:
    """The 3-plane reference input of a board and its (already aligned) golden board.

    Both must have the same height and width; colour inputs are turned grey first.
    """
    b, g = gray(board), gray(golden)
    if b.shape != g.shape:
        raise ValueError(f"board {b.shape[1]}x{b.shape[0]} and golden {g.shape[1]}x{g.shape[0]} differ in size")
    return np.dstack([b, g, cv2.absdiff(b, g)])


def split_planes(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(board, golden, difference) planes of a composed reference image."""
    return reference[:, :, BOARD], reference[:, :, GOLDEN], reference[:, :, DIFF]


@dataclass(frozen=True)
class Jitter:
    """How far a training pair may be from perfect registration and equal lighting."""

    shift_px: float = 2.5  # golden shifted by up to this many pixels on each axis
    rotate_deg: float = 0.6
    scale: float = 0.006  # relative
    gain: float = 0.15  # board brightness gain in 1 +- gain
    offset: float = 12.0  # board brightness offset in +- grey levels
    blur_p: float = 0.4  # chance that the board is softened (sigma 0.3-1.0 px)
    exact_p: float = 0.3  # chance that the pair is left exactly registered and lit


def warp_small(image: np.ndarray, rng: np.random.Generator, j: Jitter) -> np.ndarray:
    """``image`` moved by a small random similarity transform (replicated border)."""
    h, w = image.shape[:2]
    angle = rng.uniform(-j.rotate_deg, j.rotate_deg)
    scale = 1.0 + rng.uniform(-j.scale, j.scale)
    m = np.asarray(cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale), np.float64)
    m[:, 2] += rng.uniform(-j.shift_px, j.shift_px, size=2)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def relight(image: np.ndarray, rng: np.random.Generator, j: Jitter) -> np.ndarray:
    """``image`` with a random brightness gain and offset, sometimes slightly blurred."""
    out = image.astype(np.float32) * (1.0 + rng.uniform(-j.gain, j.gain)) + rng.uniform(-j.offset, j.offset)
    if rng.random() < j.blur_p:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.0)), np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def jitter_pair(board: np.ndarray, golden: np.ndarray, rng: np.random.Generator, j: Jitter = Jitter()) -> np.ndarray:
    """A reference input of the pair with random residual misregistration and lighting."""
    b, g = gray(board), gray(golden)
    if rng.random() >= j.exact_p:
        g = warp_small(g, rng, j)
        b = relight(b, rng, j)
    return compose(b, g)
