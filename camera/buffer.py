"""A bounded frame buffer between a camera and its consumer.

The producer (a capture thread or an HTTP handler) must never wait for the consumer:
when the buffer is full, ``put`` drops the OLDEST frame and counts the drop, so the
consumer always sees the newest frames and a slow consumer shows up as a number.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from camera.frame import Frame


class FrameBuffer:
    """Bounded, thread-safe, drop-oldest queue of frames."""

    def __init__(self, maxsize: int = 8) -> None:
        if maxsize < 1:
            raise ValueError(f"FrameBuffer maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._frames: deque[Frame] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._frames_in = 0
        self._dropped = 0
        self._closed = False

    def put(self, frame: Frame) -> bool:
        """Add a frame without ever blocking; returns True when the oldest frame was dropped for it."""
        with self._cond:
            dropped = len(self._frames) >= self.maxsize
            if dropped:
                self._frames.popleft()
                self._dropped += 1
            self._frames.append(frame)
            self._frames_in += 1
            self._cond.notify()
        return dropped

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest buffered frame; None after ``timeout`` seconds, or at once when closed and empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._frames:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame = self._frames.popleft()
            self._cond.notify_all()  # wakes a producer waiting in wait_for_space
            return frame

    def wait_for_space(self, timeout: float) -> bool:
        """For producers that choose to pace themselves to the consumer: wait until not full."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._frames) >= self.maxsize and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self) -> None:
        """No more frames will come: waiting consumers wake up; buffered frames can still be read."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def depth(self) -> int:
        """Frames waiting now."""
        with self._cond:
            return len(self._frames)

    @property
    def frames_in(self) -> int:
        """Frames ever put."""
        with self._cond:
            return self._frames_in

    @property
    def dropped(self) -> int:
        """Frames dropped because the buffer was full."""
        with self._cond:
            return self._dropped
