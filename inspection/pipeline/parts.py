"""Per-camera part bookkeeping: entered / inspect / exited / uninspected, coverage, line state.

Per frame the pipeline calls ``PartTracker.update(boards, frame)`` with the part model's
board detections (in the frame's full-resolution pixels). It tracks the boards, and
returns one frozen ``PartsUpdate``: parts that entered, the ``InspectRequest`` of each part
that just crossed the trigger while fully inside the frame (exactly one per part, with the
crop cut from the full-resolution image), parts that left the view, parts that left
without an inspection, and line started / stopped transitions.

A part is a confirmed track; it leaves the view when the tracker drops its track (no
detection for ``track_buffer_s``), so ``part.exited`` comes that long after the last
sighting; the event carries the last sighting's frame and time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from camera.frame import Frame
from inspection.core.detections import Detections
from inspection.core.errors import PartsError
from inspection.pipeline.events import LineState, LineStateChanged, PartEntered, PartExited, PartUninspected
from inspection.pipeline.tracking import ByteTrack, ByteTrackConfig, Tracker, Tracks
from inspection.pipeline.trigger import (
    CrossingState,
    LineTrigger,
    LineTriggerConfig,
    TriggerConfig,
    ZoneTrigger,
    anchor_points,
    build_trigger,
)


class PartsConfig(BaseModel):
    """Settings of one camera's part bookkeeping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trigger: TriggerConfig = Field(
        default_factory=lambda: LineTriggerConfig(start=(640.0, 0.0), end=(640.0, 720.0)),
        description="Where a part is inspected: a line (with direction) or a zone, in frame pixels.",
    )
    tracker: ByteTrackConfig = Field(default_factory=ByteTrackConfig, description="Board tracker settings.")
    crop_margin_px: int = Field(
        16, ge=0, description="Pixels added around the board box when cropping (clipped to the frame)."
    )
    edge_margin_px: float = Field(
        3.0,
        ge=0,
        description="A board is fully inside the frame only if its box is at least this far from every frame edge.",
    )
    motion_px: float = Field(
        5.0, gt=0, description="A board has moved when its centre is this far from where it was when it last moved."
    )
    stop_after_s: float = Field(
        2.0, gt=0, description="The line is stopped when boards are in view and none has moved for this long."
    )


@dataclass(frozen=True, eq=False)
class InspectRequest:
    """One inspection to run: the board crop from the full-resolution frame."""

    part_id: str  # "[<run id>-]<camera>-<track id>-<first frame seq>"
    camera_id: str
    track_id: int
    crop: np.ndarray  # BGR, a copy (does not keep the frame alive)
    board_xyxy: np.ndarray  # (4,) float32 detected board box in frame pixels
    crop_xyxy: np.ndarray  # (4,) int64 where the crop was cut in the frame (box + margin, clipped)
    frame_seq: int
    t_capture: float  # monotonic capture time of the frame
    t_wall: float


@dataclass(frozen=True)
class PartCounters:
    seen: int = 0  # parts (confirmed tracks) that entered
    inspected: int = 0  # parts an inspection was requested for
    uninspected: int = 0  # parts that left without one

    @property
    def coverage(self) -> float:
        """inspected / seen; 1.0 before any part is seen. Parts still in view count as seen."""
        return self.inspected / self.seen if self.seen else 1.0


@dataclass(frozen=True, eq=False)
class PartsUpdate:
    """Everything one frame changed for one camera."""

    camera_id: str
    frame_seq: int
    t_capture: float
    tracks: Tracks
    entered: tuple[PartEntered, ...]
    requests: tuple[InspectRequest, ...]
    exited: tuple[PartExited, ...]
    uninspected: tuple[PartUninspected, ...]
    line_events: tuple[LineStateChanged, ...]
    line_state: LineState
    counters: PartCounters


@dataclass(frozen=True)
class BoardInView:
    """A tracked board in one frame, for the live view: its box and the part it is (None before it entered)."""

    xyxy: tuple[float, float, float, float]  # frame pixels
    part_id: str | None


@dataclass
class _Part:
    """Internal, mutable state of one part in view."""

    part_id: str
    track_id: int
    crossing: CrossingState = field(default_factory=CrossingState)
    inspected: bool = False
    ever_inside: bool = False
    last_seq: int = 0
    last_t: float = 0.0
    rest_center: np.ndarray = field(default_factory=lambda: np.zeros(2))


class PartTracker:
    """Part bookkeeping for one camera. Stateful; never changes its inputs."""

    def __init__(
        self,
        camera_id: str,
        config: PartsConfig | None = None,
        tracker: Tracker | None = None,
        trigger: LineTrigger | ZoneTrigger | None = None,
        run_id: str = "",
    ) -> None:
        self.camera_id = camera_id
        self.run_id = f"{run_id}-" if run_id else ""  # part ids stay unique across restarts
        self.config = config or PartsConfig()
        self.tracker = tracker if tracker is not None else ByteTrack(self.config.tracker)
        self.trigger = trigger if trigger is not None else build_trigger(self.config.trigger)
        self._parts: dict[int, _Part] = {}
        self._counters = PartCounters()
        self._line = LineState.UNKNOWN
        self._still_since: float | None = None
        self._last: tuple[int, float] = (-1, float("-inf"))

    @property
    def counters(self) -> PartCounters:
        return self._counters

    @property
    def line_state(self) -> LineState:
        return self._line

    def update(self, boards: Detections, frame: Frame) -> PartsUpdate:
        """Track this frame's boards and report what changed; see the module docstring."""
        if frame.camera_id != self.camera_id:
            raise PartsError(f"frame from camera {frame.camera_id!r} given to parts of {self.camera_id!r}")
        if frame.t_stream < self._last[1]:
            raise PartsError(f"frame {frame.seq} of {self.camera_id!r} is older than frame {self._last[0]}")
        self._last = (frame.seq, frame.t_stream)
        tracks = self.tracker.update(boards, frame.t_stream)
        entered = self._enter(tracks, frame)
        requests = self._inspect(tracks, frame)
        line_events = self._line_motion(tracks, frame)
        exited, uninspected = self._leave(set(tracks.alive_id.tolist()))
        return self._result(frame.seq, frame.t_mono, tracks, entered, requests, exited, uninspected, line_events)

    def in_view(self, tracks: Tracks) -> tuple[BoardInView, ...]:
        """The tracked boards of a frame (``update(...).tracks``) with their part ids."""
        return tuple(
            BoardInView((float(x1), float(y1), float(x2), float(y2)), part.part_id if part else None)
            for (x1, y1, x2, y2), part in zip(
                tracks.xyxy.tolist(), (self._parts.get(t) for t in tracks.track_id.tolist()), strict=True
            )
        )

    def close(self) -> PartsUpdate:
        """End of stream: every part still known leaves now (exited, and uninspected if so)."""
        exited, uninspected = self._leave(set())
        self._still_since = None
        return self._result(self._last[0], self._last[1], Tracks.empty(), (), (), exited, uninspected, ())

    def _result(
        self,
        seq: int,
        t: float,
        tracks: Tracks,
        entered: tuple[PartEntered, ...],
        requests: tuple[InspectRequest, ...],
        exited: tuple[PartExited, ...],
        uninspected: tuple[PartUninspected, ...],
        line_events: tuple[LineStateChanged, ...],
    ) -> PartsUpdate:
        c = self._counters
        self._counters = PartCounters(
            c.seen + len(entered), c.inspected + len(requests), c.uninspected + len(uninspected)
        )
        return PartsUpdate(
            self.camera_id,
            seq,
            t,
            tracks,
            entered,
            requests,
            exited,
            uninspected,
            line_events,
            self._line,
            self._counters,
        )

    def _enter(self, tracks: Tracks, frame: Frame) -> tuple[PartEntered, ...]:
        entered = []
        for box, tid in zip(tracks.xyxy, tracks.track_id.tolist(), strict=True):
            if tid in self._parts:
                continue
            part_id = f"{self.run_id}{self.camera_id}-{tid}-{frame.seq}"
            center = anchor_points(box[None], "center")[0]
            self._parts[tid] = _Part(part_id, tid, rest_center=center)
            entered.append(PartEntered(part_id, self.camera_id, tid, box.copy(), frame.seq, frame.t_mono))
        return tuple(entered)

    def _inspect(self, tracks: Tracks, frame: Frame) -> tuple[InspectRequest, ...]:
        """Advance each seen part's crossing; request an inspection once crossed and fully inside."""
        if len(tracks) == 0:
            return ()
        sides = self.trigger.side(anchor_points(tracks.xyxy.astype(np.float64), self.trigger.anchor))
        inside = self._fully_inside(tracks.xyxy, frame.image.shape)
        requests = []
        for k, tid in enumerate(tracks.track_id.tolist()):
            part = self._parts[tid]
            part.crossing = part.crossing.step(int(sides[k]))
            part.ever_inside = part.ever_inside or bool(inside[k])
            part.last_seq, part.last_t = frame.seq, frame.t_mono
            if part.crossing.crossed and inside[k] and not part.inspected:
                part.inspected = True
                requests.append(self._request(part, tracks.xyxy[k], frame))
        return tuple(requests)

    def _fully_inside(self, xyxy: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        m = self.config.edge_margin_px
        h, w = shape[:2]
        return (xyxy[:, 0] >= m) & (xyxy[:, 1] >= m) & (xyxy[:, 2] <= w - m) & (xyxy[:, 3] <= h - m)

    def _request(self, part: _Part, box: np.ndarray, frame: Frame) -> InspectRequest:
        h, w = frame.image.shape[:2]
        m = self.config.crop_margin_px
        x1, y1 = max(int(np.floor(box[0])) - m, 0), max(int(np.floor(box[1])) - m, 0)
        x2, y2 = min(int(np.ceil(box[2])) + m, w), min(int(np.ceil(box[3])) + m, h)
        crop = frame.image[y1:y2, x1:x2].copy()
        return InspectRequest(
            part.part_id,
            self.camera_id,
            part.track_id,
            crop,
            box.astype(np.float32).copy(),
            np.array([x1, y1, x2, y2], np.int64),
            frame.seq,
            frame.t_mono,
            frame.t_wall,
        )

    def _leave(self, alive: set[int]) -> tuple[tuple[PartExited, ...], tuple[PartUninspected, ...]]:
        exited, uninspected = [], []
        for tid in sorted(set(self._parts) - alive):
            part = self._parts.pop(tid)
            exited.append(PartExited(part.part_id, self.camera_id, tid, part.inspected, part.last_seq, part.last_t))
            if not part.inspected:
                uninspected.append(
                    PartUninspected(
                        part.part_id, self.camera_id, tid, _why_uninspected(part), part.last_seq, part.last_t
                    )
                )
        return tuple(exited), tuple(uninspected)

    def _line_motion(self, tracks: Tracks, frame: Frame) -> tuple[LineStateChanged, ...]:
        """Running when any board moved ``motion_px``; stopped after ``stop_after_s`` without motion.

        Stillness is only timed while boards are in view: an empty belt says nothing.
        """
        if len(tracks) == 0:
            self._still_since = None
            return ()
        centers = anchor_points(tracks.xyxy.astype(np.float64), "center")
        moved = False
        for center, tid in zip(centers, tracks.track_id.tolist(), strict=True):
            part = self._parts[tid]
            if np.hypot(*(center - part.rest_center)) > self.config.motion_px:
                part.rest_center, moved = center, True
        t = frame.t_stream
        new_state = self._line
        if moved:
            self._still_since, new_state = t, LineState.RUNNING
        elif self._still_since is None:
            self._still_since = t
        elif t - self._still_since >= self.config.stop_after_s:
            new_state = LineState.STOPPED
        if new_state is self._line:
            return ()
        event = LineStateChanged(self.camera_id, new_state, self._line, frame.seq, t)
        self._line = new_state
        return (event,)


def _why_uninspected(part: _Part) -> str:
    if part.crossing.crossed:
        return "crossed the trigger but was never fully inside the frame after crossing"
    if not part.ever_inside:
        return "never fully inside the frame (cut by the frame edge) and never crossed the trigger"
    return "left the view without crossing the trigger in the inspection direction"
