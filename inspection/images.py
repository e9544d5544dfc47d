"""Reading images from disk with clear errors."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from inspection.datasets.yolo import IMAGE_SUFFIXES
from inspection.errors import ImageError


def read_image(path: Path) -> np.ndarray:
    """BGR image of a file; ImageError names the file if it is missing or not an image."""
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError(f"{path}: not a readable image (corrupt or unknown format)")
    return img


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given plus image files inside given folders (sorted); missing paths are errors."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            out.append(p)
        else:
            raise ImageError(f"{p}: no such file or folder")
    return out
