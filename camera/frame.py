"""The hot-path frame value and what a simulated source knows about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class SourceState(StrEnum):
    """Explicit state of a frame source, shown by the UI and metrics."""

    STARTING = "starting"
    RUNNING = "running"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


@dataclass(frozen=True, eq=False)
class BoardTruth:
    """Ground truth of one board visible in a simulated frame."""

    appearance: int  # unique per board passing the camera (the same board shown twice gets two)
    name: str  # source image file name, e.g. 00041000_test.jpg
    xyxy: np.ndarray  # (4,) visible box in frame pixels
    defective: bool | None  # None when unknown
    product: str | None = None  # the board's recipe (product) when the line knows it, like a barcode reader


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured frame. Stages never change it; they return new values."""

    image: np.ndarray  # HxWx3 BGR uint8, full resolution
    camera_id: str
    seq: int  # per camera, increasing from 0
    t_mono: float  # time.monotonic() at capture
    t_wall: float  # time.time() at capture
    truth: tuple[BoardTruth, ...] = field(default=())  # simulated sources only
    t_media: float | None = None  # media timestamp in seconds (a file's PTS, a simulation's tick / fps)

    @property
    def t_stream(self) -> float:
        """The time base for motion (tracking, line state): the media timestamp when the source
        has one, else the capture time. A replay that runs faster or slower than real time, or a
        buffer filled in a burst, then still moves boards by the right amount per second."""
        return self.t_media if self.t_media is not None else self.t_mono
