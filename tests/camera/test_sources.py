"""The shared capture loop: states, frame stamping, stall detection, reconnect with backoff."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera.errors import CameraError
from camera.frame import SourceState
from camera.opencv_source import OpenCVSource
from camera.source import EndOfStream, ReconnectPolicy, ThreadedSource
from tests.conftest import wait_until

IMAGE = np.zeros((4, 4, 3), np.uint8)
FAST = ReconnectPolicy(initial_delay_s=0.05, max_delay_s=0.2, multiplier=2.0, jitter=0.0, stall_timeout_s=0.3)


class ScriptedDevice(ThreadedSource):
    """A device driven by a script: per connection, ('fail-open',) or (frames, then 'raise'|'stall'|'end')."""

    def __init__(self, script: list[tuple[object, ...]], policy: ReconnectPolicy = FAST, frame_gap: float = 0.01):
        super().__init__("dev", buffer_size=100, policy=policy, seed=1)
        self.script = list(script)
        self.frame_gap = frame_gap
        self.opens: list[float] = []
        self.states: list[SourceState] = []
        self.closed = 0
        self._step: tuple[object, ...] = ()
        self._left = 0

    def _set_state(self, state: SourceState) -> None:
        super()._set_state(state)
        if not self.states or self.states[-1] is not state:
            self.states.append(state)

    def _open(self) -> None:
        self.opens.append(time.monotonic())
        self._step = self.script.pop(0) if self.script else (10**9, "stall")
        if self._step[0] == "fail-open":
            raise CameraError("device not found")
        self._left = int(self._step[0])  # type: ignore[call-overload]

    def _capture(self) -> bool:
        if self._left > 0:
            self._left -= 1
            self._sleep(self.frame_gap)
            self._emit(IMAGE)
            return True
        end = self._step[1]
        if end == "raise":
            raise OSError("cable pulled")
        if end == "end":
            raise EndOfStream
        self._sleep(0.02)
        return False  # stall: open but silent

    def _close(self) -> None:
        self.closed += 1


def test_backoff_grows_exponentially_is_capped_and_jittered():
    policy = ReconnectPolicy(initial_delay_s=0.5, max_delay_s=4.0, multiplier=2.0, jitter=0.2)
    rng = random.Random(0)
    delays = [[policy.delay(a, rng) for _ in range(200)] for a in range(6)]
    for attempt, ds in enumerate(delays):
        base = min(4.0, 0.5 * 2**attempt)
        assert all(base * 0.8 <= d <= base * 1.2 for d in ds)
        assert max(ds) - min(ds) > base * 0.2  # really jittered, not a constant
    assert ReconnectPolicy(jitter=0.0).delay(100, rng) == ReconnectPolicy().max_delay_s


def test_states_frames_and_reconnect_after_failures():
    dev = ScriptedDevice([("fail-open",), ("fail-open",), (5, "raise"), (10**9, "stall")])
    dev.start()
    try:
        assert wait_until(lambda: dev.stats().frames_in >= 10 and dev.state is SourceState.RUNNING)
        stats = dev.stats()
        assert stats.online and stats.reconnects == 3
        assert stats.last_error is not None and "cable pulled" in stats.last_error
        assert dev.states[:4] == [
            SourceState.STARTING,
            SourceState.RECONNECTING,
            SourceState.RUNNING,
            SourceState.RECONNECTING,
        ]
        assert dev.states[-1] is SourceState.RUNNING
        gaps = np.diff(dev.opens[:3])
        assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # backoff doubled after the second failed open
        frames = [dev.read(1) for _ in range(10)]
        assert [f.seq for f in frames if f] == list(range(10))  # numbering carries on across reconnects
        assert all(f is not None and f.camera_id == "dev" for f in frames)
        t_mono = [f.t_mono for f in frames if f]
        assert t_mono == sorted(t_mono)
        assert abs(frames[-1].t_wall - time.time()) < 5  # type: ignore[union-attr]
    finally:
        dev.stop()
    assert dev.state is SourceState.STOPPED
    assert dev.closed == len(dev.opens)


def test_a_silent_device_is_shown_offline_and_reconnected():
    dev = ScriptedDevice([(3, "stall"), (10**9, "stall")], frame_gap=0.0)
    dev.start()
    try:
        assert wait_until(lambda: dev.stats().reconnects >= 1, timeout=30)
        stats = dev.stats()
        assert stats.last_error is not None and "no frame for 0.3s" in stats.last_error
        assert wait_until(lambda: dev.stats().frames_in > 3)
        assert dev.state is SourceState.RUNNING
    finally:
        dev.stop()


def test_offline_while_reconnecting_and_fps_measured():
    dev = ScriptedDevice([(20, "raise")] + [("fail-open",)] * 10**4, frame_gap=0.02)
    dev.start()
    try:
        assert wait_until(lambda: dev.stats().frames_in >= 10, 30)
        running = dev.stats()
        assert running.online and running.state is SourceState.RUNNING
        # paced at one frame per 20 ms: measured fps is never AHEAD of that pace (a busy machine can only be slower)
        assert 0 < running.fps <= 50 * 1.05
        assert wait_until(lambda: dev.state is SourceState.RECONNECTING, 30)
        assert wait_until(lambda: (dev.stats().last_frame_age_s or 0) > 0.3, 30)  # longer than the stall timeout
        offline = dev.stats()
        assert not offline.online and offline.state is SourceState.RECONNECTING
        assert offline.last_error == "CameraError: device not found"
        assert wait_until(lambda: dev.stats().fps == 0.0, 30)  # a silent camera's fps decays to nothing
    finally:
        dev.stop()
    frames = list(iter(lambda: dev.read(0), None))
    assert [f.seq for f in frames] == list(range(20))  # every frame, in order
    gaps = [b.t_mono - a.t_mono for a, b in zip(frames, frames[1:], strict=False)]
    assert min(gaps) >= 0.02 * 0.95  # never ahead of the pace


def test_stop_is_prompt_even_during_a_long_backoff():
    dev = ScriptedDevice([("fail-open",)] * 5, policy=ReconnectPolicy(initial_delay_s=30, max_delay_s=60))
    dev.start()
    assert wait_until(lambda: dev.state is SourceState.RECONNECTING)
    t = time.monotonic()
    dev.stop()
    assert time.monotonic() - t < 20  # well short of the 30 s backoff: stop cut the wait short
    assert dev.state is SourceState.STOPPED
    assert dev.read(5) is None  # stopped and empty: no wait


def test_end_of_stream_stops_and_buffered_frames_stay_readable():
    dev = ScriptedDevice([(4, "end")], frame_gap=0.0)
    dev.start()
    try:
        assert wait_until(lambda: dev.state is SourceState.STOPPED)
        assert not dev.drained
        assert [f.seq for f in iter(lambda: dev.read(1), None)] == [0, 1, 2, 3]
        assert dev.drained
        assert dev.stats().reconnects == 0 and not dev.stats().online
    finally:
        dev.stop()


class FakeCapture:
    """Stands in for cv2.VideoCapture: a list of grab/retrieve outcomes, then grab fails."""

    def __init__(self, outcomes: list[object]):
        self.outcomes = outcomes
        self.pending: object = None
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def grab(self) -> bool:
        if not self.outcomes:
            time.sleep(0.01)
            return False
        self.pending = self.outcomes.pop(0)
        return True

    def retrieve(self) -> tuple[bool, object]:
        if isinstance(self.pending, str) and self.pending == "corrupt":
            return False, None
        if isinstance(self.pending, str) and self.pending == "empty":
            return True, np.zeros((0, 0, 3), np.uint8)
        return True, self.pending

    def get(self, prop: int) -> float:
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        return True

    def release(self) -> None:
        self.released = True


def test_corrupt_frames_are_counted_and_skipped_and_a_dead_stream_reconnects():
    good = np.full((6, 8, 3), 7, np.uint8)
    grey = np.full((6, 8), 9, np.uint8)
    captures = [FakeCapture([good, "corrupt", good, "empty", grey]), FakeCapture([good] * 3)]
    made: list[FakeCapture] = []

    class Cam(OpenCVSource):
        def _make_capture(self) -> FakeCapture:
            made.append(captures.pop(0) if captures else FakeCapture([]))
            return made[-1]

    cam = Cam("c", "rtsp://example.invalid/x", max_failed_grabs=3, policy=FAST, buffer_size=50)
    cam.start()
    try:
        assert wait_until(lambda: cam.stats().frames_in >= 6)
        stats = cam.stats()
        assert stats.bad_frames == 2 and stats.reconnects >= 1
        frames = [cam.read(1) for _ in range(6)]
        assert all(f is not None and f.image.shape == (6, 8, 3) for f in frames)
        assert frames[2].image[0, 0, 0] == 9  # type: ignore[union-attr]  # grey converted to BGR
        assert made[0].released
    finally:
        cam.stop()


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25, (64, 48))
    for i in range(12):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    return path


def test_video_file_plays_once_then_stops(clip: Path):
    cam = OpenCVSource("f", clip, realtime=False, buffer_size=100, policy=FAST)
    cam.start()
    try:
        assert wait_until(lambda: cam.state is SourceState.STOPPED)
        frames = list(iter(lambda: cam.read(1), None))
        assert len(frames) == 12 and frames[0].image.shape == (48, 64, 3)
        assert [f.seq for f in frames] == list(range(12))
    finally:
        cam.stop()


def test_video_file_loops(clip: Path):
    cam = OpenCVSource("f", clip, loop=True, realtime=False, buffer_size=100, policy=FAST)
    cam.start()
    try:
        assert wait_until(lambda: cam.stats().frames_in >= 30)
        assert cam.state is SourceState.RUNNING and cam.stats().reconnects == 0
    finally:
        cam.stop()


def test_video_file_in_real_time_keeps_its_frame_rate(clip: Path):
    cam = OpenCVSource("f", clip, realtime=True, buffer_size=100, policy=FAST)
    t = time.monotonic()
    cam.start()
    try:
        assert wait_until(lambda: cam.state is SourceState.STOPPED)
        assert time.monotonic() - t >= 0.4  # 12 frames at 25 fps
    finally:
        cam.stop()


def test_missing_file_is_offline_and_retried(tmp_path: Path):
    cam = OpenCVSource("f", tmp_path / "nope.mp4", policy=FAST)
    cam.start()
    try:
        assert wait_until(lambda: cam.stats().reconnects >= 2)
        stats = cam.stats()
        assert stats.state is SourceState.RECONNECTING and not stats.online
        assert stats.last_error is not None and "no such video file" in stats.last_error
    finally:
        cam.stop()
    assert not any(t.name == "camera-f" for t in threading.enumerate())
