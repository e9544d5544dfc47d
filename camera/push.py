"""A camera that pushes JPEG or PNG images to us (the HTTP route calls ``push``).

Every body is checked before it is decoded: not empty, not larger than ``max_bytes``,
a supported content type, magic bytes that match it, image dimensions (read from
the header) within ``max_pixels``, and finally that it decodes. A bad body raises
:class:`~camera.errors.FrameRejected` whose message names the reason; the source
counts it and carries on.

There is no device to reconnect to: the source is ``running`` while frames keep
arriving and shows ``reconnecting`` (offline) when none came within the stall timeout.
"""

from __future__ import annotations

import struct
import time

import cv2
import numpy as np

from camera.errors import FrameRejected
from camera.frame import Frame, SourceState
from camera.source import BufferedSource, ReconnectPolicy

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONTENT_TYPES = {"image/jpeg": "jpeg", "image/jpg": "jpeg", "image/pjpeg": "jpeg", "image/png": "png"}


def sniff_format(data: bytes) -> str | None:
    """'jpeg', 'png' or None, from the magic bytes."""
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    if data.startswith(PNG_MAGIC):
        return "png"
    return None


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) from a PNG IHDR or a JPEG SOF marker, without decoding; None if not found."""
    if fmt == "png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            return None
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return int(w), int(h)
        i += 2 + length
    return None


class PushSource(BufferedSource):
    """Frames pushed as encoded images; ``push()`` validates and buffers them."""

    def __init__(self, camera_id: str, *, max_bytes: int = 16 * 1024 * 1024, max_pixels: int = 40_000_000,
                 buffer_size: int = 8, policy: ReconnectPolicy | None = None) -> None:
        super().__init__(camera_id, buffer_size=buffer_size, policy=policy)
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self._started = False

    def start(self) -> None:
        self._started = True
        self.buffer.reopen()
        self._set_state(SourceState.STARTING)

    def stop(self, timeout: float = 5.0) -> None:
        self._started = False
        self._set_state(SourceState.STOPPED)
        self.buffer.close()

    @property
    def state(self) -> SourceState:
        """Running while frames arrive; reconnecting once none came within the stall timeout."""
        state = self._state
        if state is SourceState.RUNNING:
            age = self._frame_age()
            if age is not None and age > self.policy.stall_timeout_s:
                return SourceState.RECONNECTING
        return state

    def _frame_age(self) -> float | None:
        with self._lock:
            return None if self._last_frame_t is None else time.monotonic() - self._last_frame_t

    def push(self, data: bytes, content_type: str | None = None) -> Frame:
        """Validate, decode and buffer one image; raises FrameRejected naming the reason."""
        try:
            image = self.decode(data, content_type)
        except FrameRejected as exc:
            self._note_bad_frame(str(exc))
            raise
        if not self._started:
            raise FrameRejected(f"camera {self.camera_id!r} is not started")
        if self._state is not SourceState.RUNNING:
            self._set_state(SourceState.RUNNING)
        return self._emit(image)

    def decode(self, data: bytes, content_type: str | None = None) -> np.ndarray:
        """The BGR image in ``data`` after every check; raises FrameRejected naming the reason."""
        if not data:
            raise FrameRejected("empty body: expected a JPEG or PNG image")
        if len(data) > self.max_bytes:
            raise FrameRejected(f"image too large: {len(data)} bytes > max_bytes {self.max_bytes}")
        declared = None
        if content_type:
            mime = content_type.split(";", 1)[0].strip().lower()
            declared = CONTENT_TYPES.get(mime)
            if declared is None:
                raise FrameRejected(f"unsupported content type {mime!r}: expected image/jpeg or image/png")
        fmt = sniff_format(data)
        if fmt is None:
            raise FrameRejected("not an image: body is neither JPEG nor PNG")
        if declared is not None and declared != fmt:
            raise FrameRejected(f"content type says {declared} but the body is {fmt}")
        size = header_size(data, fmt)
        if size is not None and size[0] * size[1] > self.max_pixels:
            raise FrameRejected(f"image too large: {size[0]}x{size[1]} pixels > max_pixels {self.max_pixels}")
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            raise FrameRejected(f"not an image: {fmt} body does not decode")
        return image
