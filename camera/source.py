"""The frame source interface and the capture loop every threaded camera shares.

A source owns a :class:`~camera.buffer.FrameBuffer`; ``read()`` takes from it. Threaded
sources run one capture thread that opens the device, delivers frames, and on any
failure (an exception, or no frame for ``stall_timeout_s``) closes it, shows
``reconnecting`` and tries again after an exponential backoff with jitter. A camera
that goes away is therefore visible (``online=False``), never silently frozen.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass

import numpy as np

from camera.buffer import FrameBuffer
from camera.errors import CameraError
from camera.frame import BoardTruth, Frame, SourceState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconnectPolicy:
    """When a device counts as lost and how long to wait before each new attempt."""

    initial_delay_s: float = 0.5
    max_delay_s: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.2  # each delay is scaled by a uniform factor in [1 - jitter, 1 + jitter]
    stall_timeout_s: float = 5.0  # no frame for this long: the device is lost

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (0 for the first)."""
        base = min(self.max_delay_s, self.initial_delay_s * self.multiplier ** min(attempt, 64))
        return max(0.0, base * rng.uniform(1.0 - self.jitter, 1.0 + self.jitter))


@dataclass(frozen=True)
class SourceStats:
    """A snapshot of one source for the UI and metrics."""

    camera_id: str
    state: SourceState
    fps: float  # measured over the last ``fps_window_s`` seconds
    frames_in: int  # frames delivered into the buffer
    dropped: int  # frames dropped by the buffer because the consumer was slow
    reconnects: int  # times the device was lost (failed, stalled or could not be opened)
    last_error: str | None
    last_frame_age_s: float | None  # None before the first frame
    online: bool  # running and a frame arrived within the stall timeout
    bad_frames: int = 0  # corrupt or unreadable frames skipped (or pushed frames rejected)


class EndOfStream(Exception):
    """Raised by a capture step when the source has nothing more to show (file end, replay done)."""


class FrameSource(ABC):
    """One camera: ``start()``, ``read()`` frames, ``stats()``, ``stop()``."""

    camera_id: str

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self, timeout: float = 5.0) -> None: ...

    @abstractmethod
    def read(self, timeout: float | None = None) -> Frame | None:
        """The oldest buffered frame, or None after ``timeout`` (or at once when stopped and drained)."""

    @property
    @abstractmethod
    def state(self) -> SourceState: ...

    @property
    @abstractmethod
    def drained(self) -> bool:
        """Stopped and every buffered frame read: nothing will ever come again (race-free end test)."""

    @abstractmethod
    def stats(self) -> SourceStats: ...


class _FpsMeter:
    """Frames per second over a sliding window of capture times."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, t: float) -> None:
        self._times.append(t)
        self._prune(t)

    def _prune(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()

    def fps(self, now: float) -> float:
        self._prune(now)
        if len(self._times) < 2:
            return 0.0
        span = now - self._times[0]  # up to now, so that a camera that went silent decays to 0
        return (len(self._times) - 1) / span if span > 0 else 0.0


class BufferedSource(FrameSource):
    """What every source shares: the buffer, frame numbering, counters and stats."""

    def __init__(
        self, camera_id: str, *, buffer_size: int = 8, policy: ReconnectPolicy | None = None, fps_window_s: float = 2.0
    ) -> None:
        self.camera_id = camera_id
        self.policy = policy or ReconnectPolicy()
        self.buffer = FrameBuffer(buffer_size)
        self._lock = threading.Lock()
        self._fps = _FpsMeter(fps_window_s)
        self._state = SourceState.STOPPED
        self._seq = 0
        self._reconnects = 0
        self._bad_frames = 0
        self._last_error: str | None = None
        self._last_frame_t: float | None = None

    def read(self, timeout: float | None = None) -> Frame | None:
        return self.buffer.get(timeout)

    @property
    def state(self) -> SourceState:
        return self._state

    @property
    def drained(self) -> bool:
        return self.buffer.closed and self.buffer.depth == 0

    def _set_state(self, state: SourceState) -> None:
        if state is not self._state:
            log.info("camera %s: %s -> %s", self.camera_id, self._state.value, state.value)
            self._state = state

    def _emit(self, image: np.ndarray, truth: tuple[BoardTruth, ...] = (), t_media: float | None = None) -> Frame:
        """Stamp an image as this camera's next frame and buffer it."""
        with self._lock:
            t_mono, t_wall = time.monotonic(), time.time()
            frame = Frame(image, self.camera_id, self._seq, t_mono, t_wall, truth, t_media)
            self._seq += 1
            self._last_frame_t = t_mono
            self._fps.tick(t_mono)
        self.buffer.put(frame)
        return frame

    def _note_bad_frame(self, reason: str) -> None:
        with self._lock:
            self._bad_frames += 1
            self._last_error = reason

    def _note_error(self, exc: BaseException | str) -> None:
        text = exc if isinstance(exc, str) else f"{exc.__class__.__name__}: {exc}"
        with self._lock:
            self._last_error = text
        log.warning("camera %s: %s", self.camera_id, text)

    def _online(self, state: SourceState, age: float | None) -> bool:
        return state is SourceState.RUNNING and age is not None and age <= self.policy.stall_timeout_s

    def stats(self) -> SourceStats:
        now = time.monotonic()
        state = self.state
        with self._lock:
            age = None if self._last_frame_t is None else now - self._last_frame_t
            return SourceStats(
                self.camera_id,
                state,
                self._fps.fps(now),
                self.buffer.frames_in,
                self.buffer.dropped,
                self._reconnects,
                self._last_error,
                age,
                self._online(state, age),
                self._bad_frames,
            )


class StallError(CameraError):
    """The device is open but delivered no frame within the stall timeout."""


class ThreadedSource(BufferedSource):
    """Runs the capture loop in a thread. Subclasses implement ``_open``, ``_capture`` and ``_close``.

    ``_capture()`` delivers at most one frame (through ``self._emit``) and returns True
    if it did; False means nothing arrived this time (the stall clock keeps running).
    It raises :class:`EndOfStream` when the source is finished, anything else when the
    device failed. It must not block for longer than about the stall timeout.
    """

    def __init__(
        self,
        camera_id: str,
        *,
        buffer_size: int = 8,
        policy: ReconnectPolicy | None = None,
        fps_window_s: float = 2.0,
        seed: int | None = None,
    ) -> None:
        super().__init__(camera_id, buffer_size=buffer_size, policy=policy, fps_window_s=fps_window_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random(seed)

    @abstractmethod
    def _open(self) -> None:
        """Open the device; raise on failure."""

    @abstractmethod
    def _capture(self) -> bool:
        """Deliver at most one frame; see the class docstring."""

    @abstractmethod
    def _close(self) -> None:
        """Release the device; must not raise."""

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self.buffer.reopen()
        self._set_state(SourceState.STARTING)
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the capture thread and release the device; frames already buffered stay readable."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("camera %s: capture thread did not stop within %.1fs", self.camera_id, timeout)
        self._set_state(SourceState.STOPPED)
        self.buffer.close()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped; True when the source is being stopped."""
        return self._stop.wait(max(0.0, seconds))

    def _run(self) -> None:
        attempt = 0
        try:
            while not self._stop.is_set():
                try:
                    self._open()
                    attempt = self._pump(attempt)
                except EndOfStream:
                    break
                except Exception as exc:  # any device failure means: reconnect
                    self._note_error(exc)
                finally:
                    self._close()
                if self._stop.is_set():
                    break
                self._lose_device()
                if self._sleep(self.policy.delay(attempt, self._rng)):
                    break
                attempt += 1
        finally:
            self._set_state(SourceState.STOPPED)
            self.buffer.close()

    def _lose_device(self) -> None:
        with self._lock:
            self._reconnects += 1
        self._set_state(SourceState.RECONNECTING)

    def _pump(self, attempt: int) -> int:
        """Capture until stopped; raises on failure or stall. Returns the backoff attempt to continue from."""
        last = time.monotonic()
        while not self._stop.is_set():
            if self._capture():
                last = time.monotonic()
                attempt = 0
                if self._state is not SourceState.RUNNING:
                    self._set_state(SourceState.RUNNING)
                continue
            if time.monotonic() - last > self.policy.stall_timeout_s:
                raise StallError(f"no frame for {self.policy.stall_timeout_s:g}s")
            self._sleep(0.005)  # nothing arrived: never spin
        return attempt
