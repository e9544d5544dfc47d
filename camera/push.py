"""A camera that pushes JPEG or PNG images to us (the HTTP route calls ``push``).

Every body is checked before it is decoded: not empty, not larger than ``max_bytes``,
a supported content type, magic bytes that match it, image dimensions read from the
header (:mod:`camera.decode`; a header without a readable size is refused) within
``max_pixels``, and finally that it decodes. A bad body raises
:class:`~camera.errors.FrameRejected` whose message names the reason; the source
counts it and carries on.

There is no device to reconnect to: the source is ``running`` while frames keep
arriving and shows ``reconnecting`` (offline) when none came within the stall timeout.
"""

from __future__ import annotations

import time

import numpy as np

from camera.decode import decode, read_header
from camera.errors import FrameRejected, ImageError
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


def header_size(data: bytes, fmt: str) -> tuple[int, int]:
    """(width, height) that a PNG IHDR or a JPEG frame header declares, without decoding; FrameRejected naming
    the reason when the header does not give it (an image of unknown size is never decoded)."""
    try:
        header = read_header(data, (fmt,))
    except ImageError as exc:
        raise FrameRejected(str(exc)) from None
    return header.width, header.height


class PushSource(BufferedSource):
    """Frames pushed as encoded images; ``push()`` validates and buffers them."""

    def __init__(
        self,
        camera_id: str,
        *,
        max_bytes: int = 16 * 1024 * 1024,
        max_pixels: int = 40_000_000,
        buffer_size: int = 8,
        policy: ReconnectPolicy | None = None,
    ) -> None:
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
        try:  # the size from the header first: too large or unreadable is refused before decoding
            return decode(data, max_pixels=self.max_pixels, formats=(fmt,))
        except ImageError as exc:
            raise FrameRejected(str(exc)) from None
