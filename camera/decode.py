"""Decoding untrusted image bytes: the size comes from the header first, and an image too large is never decoded.

Every place that decodes an image from outside goes through :func:`decode` (or :func:`read_file`):
pushed camera frames, ``twinspect predict`` and the other image readers of ``inspection.ml.images``,
the DeepPCB importer's image check and golden images. Before the decoder runs, the image size is
read from the file's own header the way the decoder reads it (JPEG: the first frame header (SOF)
after any segments, stray bytes and fill bytes; PNG: IHDR; BMP: the info header; TIFF: the first
directory; WebP: the VP8 / VP8L / VP8X header). An image whose size cannot be read is refused
(fail closed), and one over ``max_pixels`` is refused before a byte of it is decoded: the decoder
allocates what the header declares, so checking the header caps the decoder itself. A decoded
image is checked against the cap once more.

Decoding takes CPU time and memory in proportion to the pixels; callers on an event loop run it in
a worker thread (the push route does).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from camera.errors import ImageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}  # files read as images
MAX_PIXELS = 100_000_000  # default cap, width x height (OpenCV's own is 2**30)
FORMATS = ("jpeg", "png", "bmp", "tiff", "webp")
FORMAT_NAMES = {"jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "tiff": "TIFF", "webp": "WebP"}
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RST0-7 carry no length
Order = Literal["big", "little"]
_NO_SIZE = {0xD8: "a second start of image", 0xD9: "the end of image", 0xDA: "the scan (SOS)"}


class ImageTooLarge(ImageError):
    """The header declares more pixels than allowed; nothing was decoded."""


class UnreadableSize(ImageError):
    """The header does not give the image size (truncated, malformed or an unsupported variant)."""


@dataclass(frozen=True)
class ImageHeader:
    """What the header of an encoded image declares."""

    format: str  # one of FORMATS
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def sniff(data: bytes) -> str | None:
    """The format the magic bytes say (one of FORMATS), or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _u16(data: bytes, at: int, order: Order = "big") -> int:
    if at + 2 > len(data):
        raise UnreadableSize("the header is truncated")
    return int.from_bytes(data[at : at + 2], order)


def _u32(data: bytes, at: int, order: Order = "big") -> int:
    if at + 4 > len(data):
        raise UnreadableSize("the header is truncated")
    return int.from_bytes(data[at : at + 4], order)


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first JPEG frame header, reading markers the way libjpeg does."""
    n, i = len(data), 2  # after SOI
    while True:
        i = data.find(b"\xff", i)  # bytes before a marker are skipped (libjpeg warns, then goes on)
        if i < 0:
            raise UnreadableSize("no frame header (SOF) before the end of the data")
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            raise UnreadableSize("no frame header (SOF) before the end of the data")
        marker = data[i]
        i += 1
        if marker == 0x00 or marker in _NO_LENGTH:  # a stuffed 0xFF00 is not a marker
            continue
        if marker in _NO_SIZE:
            raise UnreadableSize(f"{_NO_SIZE[marker]} before any frame header (SOF)")
        length = _u16(data, i)
        if length < 2:
            raise UnreadableSize(f"marker 0xFF{marker:02X} has a bad length {length}")
        if marker in _SOF:
            if length < 8:
                raise UnreadableSize("the frame header (SOF) is too short")
            height, width = _u16(data, i + 3), _u16(data, i + 5)
            if width == 0 or height == 0:
                raise UnreadableSize(
                    f"the frame header declares {width}x{height} (a height given later by DNL is not supported)"
                )
            return width, height
        i += length


def _jpeg_scan(data: bytes) -> int:
    """Offset of the first top-level start of scan (SOS), walking the marker segments; -1 if none."""
    n, i = len(data), 2
    while True:
        i = data.find(b"\xff", i)
        if i < 0:
            return -1
        while i < n and data[i] == 0xFF:
            i += 1
        if i + 2 >= n:
            return -1
        marker = data[i]
        i += 1
        if marker == 0xDA:
            return i - 2
        if marker == 0x00 or marker in _NO_LENGTH:
            continue
        i += _u16(data, i)


def jpeg_truncated(data: bytes) -> bool:
    """Whether a JPEG lacks the end-of-image marker after its scan: the file was cut short.

    libjpeg only warns ("Premature end of JPEG file") and fills the missing rows with grey, so
    a truncated board would be inspected as if it were whole; here that warning is an error.
    """
    sos = _jpeg_scan(data)
    return sos < 0 or data.find(b"\xff\xd9", sos) < 0


def png_size(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR" or _u32(data, 8) != 13:
        raise UnreadableSize("the first chunk is not IHDR")
    return _u32(data, 16), _u32(data, 20)


def bmp_size(data: bytes) -> tuple[int, int]:
    header = _u32(data, 14, "little")
    if header == 12:  # OS/2 BITMAPCOREHEADER
        return _u16(data, 18, "little"), _u16(data, 20, "little")
    if header < 40:
        raise UnreadableSize(f"unknown info header of {header} bytes")
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)  # negative: rows top-down
    if width <= 0 or len(data) < 26:
        raise UnreadableSize(f"the info header declares a width of {width}")
    return width, abs(height)


def tiff_size(data: bytes) -> tuple[int, int]:
    """ImageWidth (256) and ImageLength (257) of the first directory (the page decoders read)."""
    order: Order = "little" if data[:2] == b"II" else "big"
    at = _u32(data, 4, order)
    entries = _u16(data, at, order)
    found: dict[int, int] = {}
    for k in range(entries):
        entry = at + 2 + 12 * k
        tag, kind = _u16(data, entry, order), _u16(data, entry + 2, order)
        if tag in (256, 257):
            if kind == 3:  # SHORT
                found[tag] = _u16(data, entry + 8, order)
            elif kind == 4:  # LONG
                found[tag] = _u32(data, entry + 8, order)
            else:
                raise UnreadableSize(f"tag {tag} has type {kind}, not SHORT or LONG")
    if 256 not in found or 257 not in found:
        raise UnreadableSize("the first directory has no ImageWidth and ImageLength")
    return found[256], found[257]


def webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise UnreadableSize("no VP8 start code")
        return _u16(data, 26, "little") & 0x3FFF, _u16(data, 28, "little") & 0x3FFF
    if chunk == b"VP8L":
        if data[20:21] != b"\x2f":
            raise UnreadableSize("no VP8L signature")
        bits = _u32(data, 21, "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        if len(data) < 30:
            raise UnreadableSize("the header is truncated")
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise UnreadableSize(f"unknown first chunk {chunk!r}")


_READERS = {"jpeg": jpeg_size, "png": png_size, "bmp": bmp_size, "tiff": tiff_size, "webp": webp_size}


def read_header(data: bytes, formats: tuple[str, ...] = FORMATS) -> ImageHeader:
    """The format and size an encoded image declares; ImageError when it is not one of ``formats`` or the size
    cannot be read (UnreadableSize)."""
    fmt = sniff(data)
    if fmt is None or fmt not in formats:
        raise ImageError(f"not a {', '.join(FORMAT_NAMES[f] for f in formats)} image")
    try:
        width, height = _READERS[fmt](data)
        if width <= 0 or height <= 0:
            raise UnreadableSize(f"it declares {width}x{height}")
    except UnreadableSize as exc:
        raise UnreadableSize(f"cannot read the image size from the {FORMAT_NAMES[fmt]} header: {exc}") from None
    return ImageHeader(fmt, width, height)


def check_pixels(header: ImageHeader, max_pixels: int) -> ImageHeader:
    if header.pixels > max_pixels:
        raise ImageTooLarge(f"image too large: {header.width}x{header.height} pixels > max_pixels {max_pixels}")
    return header


def decode(
    data: bytes, *, max_pixels: int = MAX_PIXELS, flags: int = cv2.IMREAD_COLOR, formats: tuple[str, ...] = FORMATS
) -> np.ndarray:
    """The decoded image (OpenCV ``flags``) after the header checks; ImageError (ImageTooLarge, UnreadableSize)
    naming the reason otherwise."""
    header = check_pixels(read_header(data, formats), max_pixels)
    if header.format == "jpeg" and jpeg_truncated(data):
        raise ImageError("JPEG image does not decode: it is truncated (no end-of-image marker after its scan)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None or image.size == 0:
        raise ImageError(f"{FORMAT_NAMES[header.format]} image does not decode (corrupt)")
    height, width = image.shape[:2]
    if width * height > max_pixels:  # the decoder read another size than the header said
        raise ImageTooLarge(f"image too large: decoded {width}x{height} pixels > max_pixels {max_pixels}")
    return image


def read_file(path: Path, *, max_pixels: int = MAX_PIXELS, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """:func:`decode` of a file's bytes; ImageError naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    try:
        return decode(data, max_pixels=max_pixels, flags=flags)
    except ImageError as exc:
        raise type(exc)(f"{path}: {exc}") from None
