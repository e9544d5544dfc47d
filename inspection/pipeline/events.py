"""What the engine tells its listeners: one union of frozen dataclasses, each built where it happens.

The camera threads make the line events (a part entered, left, left uninspected; the line
started or stopped as one camera saw it); the verdict thread makes ``Inspected``. A listener
takes an ``EngineEvent``; ``Listeners`` calls each one guarded, so one that raises is counted
(``twinspect_stage_errors_total``) and logged, and never stops the thread that emitted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np

from camera.frame import BoardTruth
from inspection.pipeline.telemetry import Health
from inspection.pipeline.verdict import Verdict


@dataclass(frozen=True)
class ModelInfo:
    """A model as the records and events name it."""

    name: str
    version: str


class LineState(StrEnum):
    """Whether the line is moving, as seen by one camera."""

    UNKNOWN = "unknown"
    RUNNING = "running"
    STOPPED = "stopped"


@dataclass(frozen=True, eq=False)
class PartEntered:
    event_type: ClassVar[str] = "part.entered"
    part_id: str
    camera_id: str
    track_id: int
    board_xyxy: np.ndarray  # (4,) first box seen
    frame_seq: int
    t_capture: float


@dataclass(frozen=True)
class PartExited:
    event_type: ClassVar[str] = "part.exited"
    part_id: str
    camera_id: str
    track_id: int
    inspected: bool
    frame_seq: int  # last frame it was seen in
    t_capture: float  # capture time of that frame


@dataclass(frozen=True)
class PartUninspected:
    event_type: ClassVar[str] = "part.uninspected"
    part_id: str
    camera_id: str
    track_id: int
    reason: str  # human readable
    frame_seq: int  # last frame it was seen in
    t_capture: float


@dataclass(frozen=True)
class LineStateChanged:
    camera_id: str
    state: LineState
    previous: LineState
    frame_seq: int
    t_capture: float

    @property
    def event_type(self) -> str:
        return "line.stopped" if self.state is LineState.STOPPED else "line.started"


@dataclass(frozen=True, eq=False)
class PartTriggered:
    """A board crossed the trigger fully in view and its inspection was requested (listeners only: the reject
    gate's deadline and the line model start here; it is no event of the log)."""

    event_type: ClassVar[str] = "part.triggered"
    part_id: str
    camera_id: str
    track_id: int
    board_xyxy: np.ndarray  # (4,) box at the trigger, frame pixels
    frame_seq: int
    t_capture: float  # monotonic capture time of the trigger frame
    t_stream: float  # the frame's time base for motion (media time of a simulated or file source)


@dataclass(frozen=True, eq=False)
class Inspected:
    """A finished inspection: the verdict plus what the engine knew about the board."""

    verdict: Verdict
    truth: BoardTruth | None  # simulated sources: which board this was
    frames_seen: int  # frames the board was tracked in before its inspection
    latency_s: float  # from frame capture to verdict
    t_wall: float  # capture time (wall clock)
    model: ModelInfo | None = None  # the defect model that made the verdict (None: the engine's first one)


LineEvent = PartEntered | PartExited | PartUninspected | LineStateChanged
EngineEvent = LineEvent | PartTriggered | Inspected
Listener = Callable[[EngineEvent], None]


class Listeners:
    """The engine's listeners, each called guarded (see the module docstring); safe to add to from any thread."""

    def __init__(self, health: Health) -> None:
        self._health = health
        self._listeners: tuple[Listener, ...] = ()
        self._lock = threading.Lock()

    def add(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def emit(self, event: EngineEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception as exc:  # one broken listener must not stop the line or the verdicts
                name = getattr(listener, "__qualname__", type(listener).__name__)
                stage = "verdict listener" if isinstance(event, Inspected) else "line listener"
                self._health.error(stage, exc, f"{name} on {type(event).__name__}")
