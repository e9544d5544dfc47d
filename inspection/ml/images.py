"""Reading images from disk with clear errors."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from camera.decode import IMAGE_SUFFIXES, MAX_PIXELS, read_file
from camera.errors import ImageError


def read_image(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """BGR image of a file; ImageError names the file if it is missing, not an image, of a size its header does
    not give, or larger than ``max_pixels`` (checked from the header, before decoding)."""
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    return read_file(path, max_pixels=max_pixels, flags=cv2.IMREAD_COLOR)


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
