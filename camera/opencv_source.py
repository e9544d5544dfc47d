"""Cameras read through OpenCV: RTSP and HTTP/MJPEG streams, video files, USB devices.

Streams and files go through the FFmpeg backend with open and read timeouts, so a
dead server makes ``read`` fail within the timeout and the capture loop reconnects.
``grab()`` failing means the stream is gone (or, for a file, ended); ``retrieve()``
failing after a good grab means one corrupt frame, which is counted and skipped.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camera.errors import CameraError
from camera.source import EndOfStream, ReconnectPolicy, ThreadedSource

STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


def is_stream_uri(uri: str | int) -> bool:
    return isinstance(uri, str) and uri.lower().startswith(STREAM_SCHEMES)


class OpenCVSource(ThreadedSource):
    """A camera behind ``cv2.VideoCapture``: a stream URL, a video file path or a USB device index."""

    def __init__(
        self,
        camera_id: str,
        uri: str | int | Path,
        *,
        loop: bool = False,
        realtime: bool = True,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 3.0,
        max_failed_grabs: int = 3,
        size: tuple[int, int] | None = None,
        device_fps: float | None = None,
        buffer_size: int = 8,
        policy: ReconnectPolicy | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(camera_id, buffer_size=buffer_size, policy=policy, seed=seed)
        self.uri: str | int = str(uri) if isinstance(uri, Path) else uri
        self.is_file = not isinstance(self.uri, int) and not is_stream_uri(self.uri)
        self.loop = loop
        self.realtime = realtime  # files only: deliver at the file's frame rate
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_failed_grabs = max_failed_grabs
        self.size = size  # USB only: requested (width, height)
        self.device_fps = device_fps  # USB only: requested frame rate
        self._cap: Any = None
        self._failed = 0
        self._file_fps = 25.0
        self._file_t0 = 0.0
        self._file_n = 0

    def _make_capture(self) -> Any:
        """A new ``cv2.VideoCapture`` (tests may return a stand-in with grab/retrieve/set/get/release)."""
        if isinstance(self.uri, int):
            cap = cv2.VideoCapture(self.uri)
            if self.size is not None:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
            if self.device_fps is not None:
                cap.set(cv2.CAP_PROP_FPS, self.device_fps)
            return cap
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.read_timeout_s * 1000),
        ]
        return cv2.VideoCapture(self.uri, cv2.CAP_FFMPEG, params)

    def _open(self) -> None:
        if self.is_file and not Path(str(self.uri)).is_file():
            raise CameraError(f"{self.uri}: no such video file")
        cap = self._make_capture()
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self._name()}: cannot open")
        self._cap = cap
        self._failed = 0
        if self.is_file:
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self._file_fps = fps if 0.5 <= fps <= 240 else 25.0
            self._restart_clock()

    def _name(self) -> str:
        return f"USB camera {self.uri}" if isinstance(self.uri, int) else str(self.uri)

    def _close(self) -> None:
        if self._cap is not None:
            with contextlib.suppress(Exception):  # releasing a broken capture must not take the loop down
                self._cap.release()
            self._cap = None

    def _restart_clock(self) -> None:
        self._file_t0 = time.monotonic()
        self._file_n = 0

    def _capture(self) -> bool:
        if not self._cap.grab():
            return self._grab_failed()
        ok, image = self._cap.retrieve()
        image = _as_bgr(image) if ok else None
        if image is None:
            self._note_bad_frame(f"{self._name()}: corrupt or undecodable frame skipped")
            return False
        self._failed = 0
        if self.is_file and self.realtime:
            self._file_n += 1
            if self._sleep(self._file_t0 + self._file_n / self._file_fps - time.monotonic()):
                return False
        self._emit(image)
        return True

    def _grab_failed(self) -> bool:
        if self.is_file:
            if not self.loop:
                raise EndOfStream
            self._failed += 1
            if self._failed > 1:  # rewound and still nothing: an empty or broken file
                raise CameraError(f"{self.uri}: no readable frame after rewinding")
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._restart_clock()
            return False
        self._failed += 1
        if self._failed >= self.max_failed_grabs:
            raise CameraError(f"{self._name()}: {self._failed} reads failed in a row (stream lost)")
        return False


def _as_bgr(image: np.ndarray | None) -> np.ndarray | None:
    """HxWx3 uint8 BGR, or None when the decoded frame is unusable."""
    if image is None or not isinstance(image, np.ndarray) or image.size == 0 or image.dtype != np.uint8:
        return None
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return None
