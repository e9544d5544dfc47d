"""The line as the outputs show it: typed results, counters and the vision system's state.

``Result`` is one committed ``part.inspected`` event (what OPC UA's ``LastResult``, its
``ResultReady`` event and Sparkplug's last verdict carry); ``Counters`` are the line twin's (so
they agree with the twin, the dashboard and every restart); ``vision_state`` maps the engine's
and cameras' states onto OPC 40100's state machine. ``RecentResults`` keeps the newest results
by part id and inspection id for ``GetResultById``.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from camera.frame import SourceState
from inspection.pipeline.status import EngineStatus
from sync.events import Event


class VisionState(StrEnum):
    """OPC 40100 VisionStateMachineType's main states."""

    PREOPERATIONAL = "Preoperational"
    HALTED = "Halted"
    OPERATIONAL = "Operational"
    ERROR = "Error"


def vision_state(status: EngineStatus | None, running: bool) -> VisionState:
    """Preoperational until a camera delivers; Halted once stopped; Error while storage or every camera fails."""
    if status is None or not status.cameras:
        return VisionState.PREOPERATIONAL
    if not running:
        return VisionState.HALTED
    if status.faults:
        return VisionState.ERROR
    states = {c.source.state for c in status.cameras}
    if SourceState.RUNNING in states:
        return VisionState.OPERATIONAL
    if states <= {SourceState.STARTING}:
        return VisionState.PREOPERATIONAL
    if SourceState.STARTING in states:
        return VisionState.PREOPERATIONAL
    return VisionState.ERROR  # every camera reconnecting or stopped while the engine runs


@dataclass(frozen=True)
class Result:
    """One verdict as committed to the event log."""

    result_id: str  # the part id (one verdict per board)
    part_id: str
    inspection_id: str | None
    line_id: str
    camera_id: str
    verdict: str  # pass | fail | uncertain
    defect_classes: tuple[str, ...]  # one entry per defect box
    capture_time: str  # RFC 3339, the frame's capture time
    recipe: str | None
    offset: int
    sequence: int

    @property
    def defect_count(self) -> int:
        return len(self.defect_classes)

    @property
    def classes(self) -> tuple[str, ...]:
        """The distinct defect classes, sorted."""
        return tuple(sorted(set(self.defect_classes)))

    @classmethod
    def of(cls, event: Event) -> Result:
        data = event.cloudevent()["data"]
        return cls(
            result_id=str(data["part_id"]),
            part_id=str(data["part_id"]),
            inspection_id=data.get("inspection_id"),
            line_id=event.line_id,
            camera_id=str(data["camera_id"]),
            verdict=str(data["verdict"]),
            defect_classes=tuple(str(d["class_name"]) for d in data.get("defects", [])),
            capture_time=event.time,
            recipe=data.get("recipe"),
            offset=event.offset,
            sequence=event.sequence,
        )

    def json(self) -> str:
        return json.dumps(
            {
                "result_id": self.result_id,
                "part_id": self.part_id,
                "inspection_id": self.inspection_id,
                "line_id": self.line_id,
                "camera_id": self.camera_id,
                "verdict": self.verdict,
                "defect_count": self.defect_count,
                "defect_classes": list(self.classes),
                "capture_time": self.capture_time,
                "recipe": self.recipe,
                "sequence": self.sequence,
            },
            sort_keys=True,
        )


@dataclass(frozen=True)
class Counters:
    """The line twin's counters (all runs on this data dir)."""

    entered: int = 0
    inspected: int = 0
    passed: int = 0
    failed: int = 0
    uncertain: int = 0
    uninspected: int = 0
    coverage: float = 1.0  # inspected / entered
    yield_: float = 0.0  # pass / inspected
    revision: int = 0

    @classmethod
    def of_twin(cls, doc: dict[str, Any]) -> Counters:
        features = doc["features"]
        c = features["counters"]["properties"]
        q = features["quality"]["properties"]
        verdicts = c["verdicts"]
        return cls(
            entered=int(c["entered"]),
            inspected=int(c["inspected"]),
            passed=int(verdicts["pass"]),
            failed=int(verdicts["fail"]),
            uncertain=int(verdicts["uncertain"]),
            uninspected=int(c["uninspected"]),
            coverage=float(q["coverage"]) if q["coverage"] is not None else 1.0,
            yield_=float(q["yield"]) if q["yield"] is not None else 0.0,
            revision=int(doc["revision"]),
        )


class RecentResults:
    """The newest ``size`` results by part id and by inspection id (thread-safe)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._by_id: OrderedDict[str, Result] = OrderedDict()
        self._lock = threading.Lock()
        self._latest: dict[str, Result] = {}  # by line

    def add(self, result: Result) -> None:
        with self._lock:
            self._latest[result.line_id] = result
            for key in {result.part_id, result.inspection_id} - {None}:
                self._by_id[str(key)] = result
                self._by_id.move_to_end(str(key))
            while len(self._by_id) > 2 * self.size:
                self._by_id.popitem(last=False)

    def get(self, result_id: str) -> Result | None:
        with self._lock:
            return self._by_id.get(result_id)

    def latest(self, line_id: str) -> Result | None:
        with self._lock:
            return self._latest.get(line_id)
