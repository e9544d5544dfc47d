"""Golden image files: checked on the way in, stored content-addressed, read back intact.

A golden image is kept as the bytes it was given (JPEG, PNG, BMP or TIFF), named by
their sha256: ``root/ab/cd/<sha256>.<ext>``. A file is written under a temporary name in
its final folder, fsynced, renamed over its final name and the folder fsynced, so a
reader sees no file or the whole file, never a torn one. Files are never removed or
overwritten: an inspection made months ago still finds the golden it was compared with
after its recipe was replaced.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from camera.decode import MAX_PIXELS, decode, read_header, sniff
from camera.errors import ImageError
from inspection.reference.recipes import GoldenNotFound, RecipeError
from inspection.store.durable import fsync_dir, write_atomically

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png", "bmp": "image/bmp", "tif": "image/tiff"}
FORMAT_NAMES = {"jpg": "JPEG", "png": "PNG", "bmp": "BMP", "tif": "TIFF"}
MAX_SIDE = 20_000  # pixels; a longer side is refused (and more than decode.MAX_PIXELS in all)
GOLDEN_FORMATS = ("jpeg", "png", "bmp", "tiff")
_EXTENSIONS = {"jpeg": "jpg", "png": "png", "bmp": "bmp", "tiff": "tif"}


@dataclass(frozen=True, eq=False)
class CheckedGolden:
    """Golden image bytes that decoded completely: their sha256, format and size."""

    data: bytes
    sha256: str
    ext: str  # jpg, png, bmp or tif
    width: int
    height: int

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.ext]


def sniff_format(data: bytes) -> str | None:
    """The file extension the magic bytes say (jpg, png, bmp, tif), or None."""
    return _EXTENSIONS.get(sniff(data) or "")


def _complete(data: bytes, ext: str) -> bool:
    """Whether the file is whole (decoders fill a truncated JPEG or BMP with grey and say nothing)."""
    if ext == "jpg":
        return data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if ext == "png":
        return b"IEND" in data[-16:]
    if ext == "bmp":
        return len(data) >= 14 and len(data) >= int.from_bytes(data[2:6], "little")
    return True  # TIFF: libtiff fails on a truncated strip by itself


def decode_grey(data: bytes) -> np.ndarray | None:
    """HxW uint8 grey pixels of an image file's bytes, or None when they do not decode within the limits."""
    try:
        return np.ascontiguousarray(
            decode(data, max_pixels=MAX_PIXELS, flags=cv2.IMREAD_GRAYSCALE, formats=GOLDEN_FORMATS)
        )
    except ImageError:
        return None


def check_golden(data: bytes, where: str) -> CheckedGolden:
    """Check that ``data`` is a whole JPEG, PNG, BMP or TIFF image; RecipeError naming ``where`` otherwise.

    The size is read from the header and checked before anything is decoded (an image whose header gives no
    size is refused).
    """
    if not data:
        raise RecipeError(f"{where}: empty file, not an image")
    ext = sniff_format(data)
    if ext is None:
        raise RecipeError(f"{where}: not a JPEG, PNG, BMP or TIFF image")
    if not _complete(data, ext):
        raise RecipeError(f"{where}: corrupt {FORMAT_NAMES[ext]} image (truncated)")
    try:
        header = read_header(data, GOLDEN_FORMATS)
    except ImageError as exc:
        raise RecipeError(f"{where}: corrupt {FORMAT_NAMES[ext]} image ({exc})") from None
    if max(header.width, header.height) > MAX_SIDE or header.pixels > MAX_PIXELS:
        raise RecipeError(
            f"{where}: {header.width}x{header.height} image; at most {MAX_SIDE} pixels a side and "
            f"{MAX_PIXELS} pixels in all"
        )
    grey = decode_grey(data)
    if grey is None:
        raise RecipeError(f"{where}: corrupt {FORMAT_NAMES[ext]} image (it does not decode)")
    height, width = grey.shape[:2]
    return CheckedGolden(data, hashlib.sha256(data).hexdigest(), ext, int(width), int(height))


def check_sha256(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256.match(sha256):
        raise RecipeError(f"golden sha256 {sha256!r}: not a lowercase hex sha256")
    return sha256


class GoldenFiles:
    """The content-addressed golden image folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, sha256: str, ext: str) -> Path:
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / f"{sha256}.{ext}"

    def find(self, sha256: str) -> Path | None:
        """The stored file of ``sha256`` (whatever its format), or None."""
        for ext in MEDIA_TYPES:
            path = self.path(sha256, ext)
            if path.is_file():
                return path
        return None

    def put_many(self, goldens: Iterable[CheckedGolden]) -> None:
        """Store every golden durably (each file, then each folder once); idempotent."""
        folders: set[Path] = set()
        for golden in goldens:
            final = self.path(golden.sha256, golden.ext)
            if final.is_file():
                continue
            try:
                final.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(final, golden.data, sync_folder=False)
            except OSError as exc:
                raise RecipeError(f"cannot write golden image {final}: {exc}") from exc
            folders.add(final.parent)
        for folder in sorted(folders):
            try:
                fsync_dir(folder)
            except OSError as exc:
                raise RecipeError(f"cannot sync folder {folder}: {exc}") from exc

    def read(self, sha256: str) -> tuple[bytes, str]:
        """(bytes, media type) of the golden named ``sha256``; checks the bytes still hash to it."""
        path = self.find(sha256)
        if path is None:
            raise GoldenNotFound(f"golden image {sha256}: no such file under {self.root}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RecipeError(f"cannot read golden image {path}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise RecipeError(f"golden image {path} is corrupt: its bytes no longer hash to its name")
        return data, MEDIA_TYPES[path.suffix[1:]]

    def grey(self, sha256: str) -> np.ndarray:
        """The golden named ``sha256`` decoded to HxW uint8 grey, as the engine compares boards with it.

        GoldenNotFound without its file; RecipeError when the file is corrupt or does not decode.
        """
        data, _ = self.read(sha256)
        grey = decode_grey(data)
        if grey is None:
            raise RecipeError(f"golden image {sha256} does not decode")
        return grey
