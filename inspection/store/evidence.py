"""Evidence images on disk, content-addressed: ``root/ab/cd/<sha256>.jpg``.

A file is written under a temporary name in its final folder, fsynced, then renamed
over its final name (``os.replace`` is atomic), and the folder is fsynced: a reader sees
either no file or the whole file, never a torn one, even after a power cut. Writing the
same bytes twice is a no-op, so evidence is written before the database row that names it
and a crash in between leaves at most an unreferenced file, never a dangling reference.
"""

from __future__ import annotations

import errno
import hashlib
import re
from pathlib import Path

import cv2
import numpy as np

from inspection.store.durable import write_atomically
from inspection.store.errors import EvidenceError, EvidenceFullError, EvidenceNotFoundError, EvidenceWriteError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_JPEG_MAGIC = b"\xff\xd8\xff"


def encode_jpeg(image_bgr: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a BGR (HxWx3) or grey (HxW) uint8 image."""
    if not 1 <= quality <= 100:
        raise EvidenceError(f"JPEG quality must be 1..100, got {quality}")
    shape_ok = image_bgr.ndim == 2 or (image_bgr.ndim == 3 and image_bgr.shape[2] == 3)
    if image_bgr.dtype != np.uint8 or not shape_ok or image_bgr.size == 0:
        raise EvidenceError(
            f"evidence image must be a non-empty HxWx3 or HxW uint8 array, got {image_bgr.dtype} {image_bgr.shape}"
        )
    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise EvidenceError(f"OpenCV could not encode a {image_bgr.shape} image as JPEG")
    return bytes(buf.tobytes())


class EvidenceStore:
    """JPEG evidence files named by the sha256 of their bytes."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        """Where the file for ``sha256`` lives (whether or not it exists)."""
        if not _SHA256.match(sha256):
            raise EvidenceError(f"not a lowercase hex sha256: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}.jpg"

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, jpeg_bytes: bytes) -> str:
        """Store JPEG bytes durably; returns their sha256. Idempotent.

        A write the disk refuses raises EvidenceWriteError (EvidenceFullError for lack of
        space): nothing is left behind, and the same call may succeed later.
        """
        if not jpeg_bytes.startswith(_JPEG_MAGIC):
            raise EvidenceError("evidence bytes are not a JPEG (no FF D8 FF header)")
        sha = hashlib.sha256(jpeg_bytes).hexdigest()
        final = self.path(sha)
        if final.is_file():
            return sha
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(final, jpeg_bytes)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise EvidenceFullError(f"cannot write evidence {final}: no space left ({exc.strerror})") from exc
            raise EvidenceWriteError(f"cannot write evidence {final}: {exc}") from exc
        return sha

    def get(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``; checks they still hash to it."""
        path = self.path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise EvidenceNotFoundError(f"no evidence file {path}") from None
        except OSError as exc:
            raise EvidenceError(f"cannot read evidence {path}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise EvidenceError(f"evidence file {path} is corrupt: its bytes no longer hash to its name")
        return data
