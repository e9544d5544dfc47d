"""Simulated cameras whose frames are rendered before they start: the renderer stays out of the engine's budget.

:class:`SimulatedLine` renders each frame when it is due, in the camera's thread: on a 2-core box
that rendering (belt, boards pasted with their alpha, effects) competes with the engine for the
same cores, and a capacity measurement would count the simulator's cost as the engine's. Here a
finite line (a replay of N boards: empty belt, boards pass, empty belt again, so the loop has no
seam) is rendered once into memory, :func:`render_loop`, and every camera plays that one loop in
real time from its own starting frame (the frames are shared read-only, nothing is copied per
camera). A played frame costs a buffer put; each pass of the loop gives its boards new
appearance numbers, so a board is never counted twice.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from camera.boards import BoardPool
from camera.frame import BoardTruth
from camera.simulated import DEFAULT_STYLE, LineMotion, LineScene, replay_sequence
from camera.source import EndOfStream, ReconnectPolicy, ThreadedSource
from camera.synth import LineStyle


@dataclass(frozen=True, eq=False)
class FrameLoop:
    """Frames rendered ahead, with their truth; ``boards`` distinct appearances per pass."""

    frames: tuple[np.ndarray, ...]
    truth: tuple[tuple[BoardTruth, ...], ...]
    fps: float
    boards: int

    @property
    def seconds(self) -> float:
        return len(self.frames) / self.fps

    @property
    def nbytes(self) -> int:
        return sum(f.nbytes for f in self.frames)


def render_loop(
    pool: BoardPool,
    boards: int = 8,
    fps: float = 15.0,
    speed_px_s: float = 300.0,
    spacing_px: float = 120.0,
    defect_rate: float = 0.5,
    style: LineStyle = DEFAULT_STYLE,
    seed: int = 0,
) -> FrameLoop:
    """Render a replay of ``boards`` boards (the whole pass, empty belt to empty belt) at ``fps``."""
    motion = LineMotion(fps=fps, speed_px_s=speed_px_s, spacing_px=spacing_px, defect_rate=defect_rate, seed=seed)
    scene = LineScene(pool, style, motion, sequence=replay_sequence(pool, defect_rate, seed=seed)[:boards])
    frames, truth = [], []
    while (step := scene.step()) is not None:
        frame, t = step
        frame.setflags(write=False)  # shared by every camera: nobody may change it
        frames.append(frame)
        truth.append(t)
    return FrameLoop(tuple(frames), tuple(truth), fps, boards)


class PrerenderedLine(ThreadedSource):
    """A camera playing a :class:`FrameLoop` in real time from frame ``start``: ``frames`` frames, then the
    end of the stream (None: until stopped)."""

    def __init__(
        self,
        camera_id: str,
        loop: FrameLoop,
        *,
        start: int = 0,
        frames: int | None = None,
        fps: float | None = None,
        buffer_size: int = 8,
        policy: ReconnectPolicy | None = None,
    ) -> None:
        super().__init__(camera_id, buffer_size=buffer_size, policy=policy)
        if not loop.frames:
            raise ValueError("the frame loop is empty")
        self.loop, self.fps, self.frames = loop, fps or loop.fps, frames
        self._start = start % len(loop.frames)
        self._tick = 0
        self._t0: float | None = None

    def _open(self) -> None:
        if self._t0 is None:
            self._t0 = time.monotonic()

    def _close(self) -> None:
        pass

    @property
    def played(self) -> int:
        """Frames played so far."""
        return self._tick

    def _capture(self) -> bool:
        n = len(self.loop.frames)
        if self.frames is not None and self._tick >= self.frames:
            raise EndOfStream
        assert self._t0 is not None
        period = 1.0 / self.fps
        due = self._t0 + self._tick * period
        now = time.monotonic()
        if now > due + period:  # late (a busy host): do not burst to catch up, as a camera would not
            self._t0 = now - self._tick * period
        elif self._sleep(due - now):
            return False
        index = self._start + self._tick
        passes, i = divmod(index, n)
        self._tick += 1
        self._emit(self.loop.frames[i], _renumber(self.loop.truth[i], passes, self.loop.boards), self._tick / self.fps)
        return True


def _renumber(truth: Sequence[BoardTruth], passes: int, boards: int) -> tuple[BoardTruth, ...]:
    if not passes:
        return tuple(truth)
    return tuple(dataclasses.replace(t, appearance=t.appearance + passes * boards) for t in truth)
