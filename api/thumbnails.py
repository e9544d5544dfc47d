"""Downscaled evidence JPEGs for the review queue, cached in memory.

Evidence files are content-addressed (their sha256 names their bytes), so a thumbnail
keyed by (sha256, size) never goes stale and one cache serves every app in the process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import cv2
import numpy as np

from camera.errors import ImageError

CACHE_BYTES = 64 * 1024 * 1024  # least recently used thumbnails go first past this (~10 KB each at 160 px)
_cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
_cached_bytes = 0
_lock = threading.Lock()


def resize_jpeg(data: bytes, size: int, quality: int = 85) -> bytes:
    """``data`` scaled so its longest side is ``size`` (never enlarged), as JPEG."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError("the evidence file is not a decodable JPEG")
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if scale >= 1:
        return data  # already small enough: the original bytes
    image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError("could not encode the thumbnail")
    return bytes(buf.tobytes())


def thumbnail(sha256: str, size: int, load: Callable[[], bytes]) -> bytes:
    """The cached thumbnail of the evidence ``sha256``; ``load()`` returns the full JPEG on a miss."""
    global _cached_bytes
    key = (sha256, size)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    data = resize_jpeg(load(), size)
    with _lock:
        if key not in _cache:
            _cache[key] = data
            _cached_bytes += len(data)
        while _cached_bytes > CACHE_BYTES and _cache:
            _cached_bytes -= len(_cache.popitem(last=False)[1])
    return data
