"""``Engine.status()``: one frozen snapshot of a running engine, for the live view and the reports.

Every figure is read from its one home: the part counts from each camera's ``PartTracker``,
the camera figures from its source, the verdict counts from the engine's verdict counter,
the storage figures from the verdict backlog. Nothing here is counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from camera.frame import Frame
from camera.source import SourceStats
from inspection.core.detections import Detections
from inspection.pipeline.events import Inspected, LineState
from inspection.pipeline.parts import BoardInView, PartCounters
from inspection.pipeline.telemetry import Fault


@dataclass(frozen=True, eq=False)
class CameraStatus:
    """One camera: its source, its part counts, the frames it tracked, its latest frame and boards."""

    camera_id: str
    source: SourceStats
    parts: PartCounters
    frames: int  # frames tracked (the part model's results taken in order)
    latest: Frame | None  # the latest tracked frame (None before the first)
    boards: Detections | None  # the part model's boards in it
    in_view: tuple[BoardInView, ...] = ()  # the tracked boards in it, with their part ids (the live view's colours)

    @property
    def boards_in_view(self) -> int:
        return len(self.boards) if self.boards is not None else 0


@dataclass(frozen=True, eq=False)
class EngineStatus:
    """The whole engine at one moment; see the module docstring."""

    line_id: str
    line_state: LineState
    line_recipe: str | None
    cameras: tuple[CameraStatus, ...]
    verdicts: Mapping[str, int]  # verdicts made in this run, by outcome
    recent: tuple[Inspected, ...]  # the newest verdicts, newest first
    storage: Mapping[str, Any]  # the verdict backlog's state and counters
    faults: tuple[Fault, ...]
    stage_ms: Mapping[str, float]  # mean time per pipeline stage

    def camera(self, camera_id: str) -> CameraStatus | None:
        return next((c for c in self.cameras if c.camera_id == camera_id), None)

    @property
    def seen(self) -> int:
        return sum(c.parts.seen for c in self.cameras)

    @property
    def frames(self) -> int:
        return sum(c.frames for c in self.cameras)


def line_state(states: set[LineState]) -> LineState:
    """The line's state from its cameras': running if any sees it run, else stopped if any sees it stopped."""
    if LineState.RUNNING in states:
        return LineState.RUNNING
    return LineState.STOPPED if LineState.STOPPED in states else LineState.UNKNOWN
