"""Issue 12 item 4: the live frame colours each board by its own verdict.

Three boards are tracked in one frame (the real ``PartTracker`` gives them their part ids);
one passed, one failed, one is not inspected yet. The annotated frame the live page shows
has each box in its verdict's colour, read back from the JPEG.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np

from api.annotate import VERDICT_BGR
from api.live_view import LiveView
from camera.frame import Frame
from camera.source import SourceState, SourceStats
from inspection.core.detections import Detections
from inspection.core.outcome import Outcome
from inspection.pipeline.events import Inspected, LineState
from inspection.pipeline.parts import BoardInView, PartTracker
from inspection.pipeline.status import CameraStatus, EngineStatus
from inspection.pipeline.trigger import LineTriggerConfig
from inspection.pipeline.verdict import Verdict

BOXES = [(60.0, 100.0, 260.0, 300.0), (360.0, 100.0, 560.0, 300.0), (660.0, 100.0, 860.0, 300.0)]


def frame(seq: int) -> Frame:
    return Frame(np.full((480, 960, 3), 90, np.uint8), "cam1", seq, 0.1 * seq, time.time(), t_media=0.1 * seq)


def boards(dx: float) -> Detections:
    xyxy = np.array([(x1 + dx, y1, x2 + dx, y2) for x1, y1, x2, y2 in BOXES], np.float32)
    return Detections(xyxy, np.full(3, 0.9, np.float32), np.zeros(3, np.int64), ("board",))


def tracked() -> tuple[Frame, Detections, tuple[BoardInView, ...]]:
    """Three boards moving right for a few frames: tracked, entered, each with its part id."""
    parts = PartTracker("cam1")
    last: Any = None
    for seq in range(8):
        f, b = frame(seq), boards(2.0 * seq)
        last = (f, b, parts.in_view(parts.update(b, f).tracks))
    return last  # type: ignore[no-any-return]


class FakeEngine:
    def __init__(self, cam: CameraStatus) -> None:
        self.cam = cam
        self.listeners: list[Any] = []
        self.config = SimpleNamespace(parts=SimpleNamespace(trigger=LineTriggerConfig(start=(950, 0), end=(950, 479))))

    def add_listener(self, fn: Any) -> None:
        self.listeners.append(fn)

    def status(self) -> EngineStatus:
        return EngineStatus("line-1", LineState.RUNNING, None, (self.cam,), {}, (), {}, (), {})


def inspected(part_id: str, outcome: Outcome) -> Inspected:
    crop = np.zeros((32, 32, 3), np.uint8)
    v = Verdict(part_id, "cam1", 1, outcome, Detections.empty(("open",)), crop, np.zeros(4, np.float32), 1, 0.0)
    return Inspected(v, None, 3, 0.05, time.time())


def edge_colour(image: np.ndarray, box: tuple[float, float, float, float]) -> tuple[int, int, int]:
    """The median colour along the box's left edge (away from the label), BGR."""
    x1, y1, _, y2 = (int(v) for v in box)
    strip = image[int(y1) + 30 : int(y2) - 10, x1 - 1 : x1 + 2].reshape(-1, 3)
    return tuple(int(v) for v in np.median(strip, axis=0))  # type: ignore[return-value]


def decoded(jpeg: bytes | None) -> np.ndarray:
    assert jpeg is not None
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def close(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 30  # JPEG


def test_each_board_on_the_live_frame_has_its_verdicts_colour() -> None:
    f, dets, in_view = tracked()
    assert len(in_view) == 3 and all(b.part_id for b in in_view), in_view
    stats = SourceStats("cam1", SourceState.RUNNING, 10.0, 8, 0, 0, None, 0.0, True)
    cam = CameraStatus("cam1", stats, PartTracker("cam1").counters, 8, f, dets, in_view)
    view = LiveView(FakeEngine(cam))  # type: ignore[arg-type]
    ids = [b.part_id for b in in_view]
    assert ids[0] and ids[1]
    for listener in view.engine.listeners:  # type: ignore[attr-defined]
        listener(inspected(ids[0], Outcome.PASS))
        listener(inspected(ids[1], Outcome.FAIL))
    jpeg = view.latest_jpeg("cam1")
    image = decoded(jpeg)
    got = [edge_colour(image, b.xyxy) for b in in_view]
    want = [VERDICT_BGR["pass"], VERDICT_BGR["fail"], VERDICT_BGR[None]]
    assert all(close(g, w) for g, w in zip(got, want, strict=True)), (got, want)
    # the third board's verdict arrives: the same frame is drawn again, now in its colour
    for listener in view.engine.listeners:  # type: ignore[attr-defined]
        listener(inspected(str(ids[2]), Outcome.UNCERTAIN))
    again = view.latest_jpeg("cam1")
    assert again != jpeg
    image = decoded(again)
    assert close(edge_colour(image, in_view[2].xyxy), VERDICT_BGR["uncertain"])
