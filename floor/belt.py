"""The line model: the belt speed and board pitch the twin expects, and what differs from it (``twin.drift``).

Per camera, from the engine's events: boards enter the view (``PartEntered``), cross the trigger
(``PartTriggered``) and leave. The model knows, from ``belt`` in the config or learned as the
median over the first ``learn_boards`` boards:
- the pitch: time between two boards at the trigger;
- the transit: time from entering the view to the trigger;
- the belt speed: pixels per second between entering and the trigger.
Then each of these is a ``twin.drift`` event naming what was expected and what was seen:
- a board that entered but left without reaching the trigger, or has not reached it a
  ``gap_factor`` of transits after entering (``belt.<camera>.missed``);
- a board seen twice: two triggers closer than 40% of the pitch (``belt.<camera>.twice``);
- a gap: no board at the trigger for ``gap_factor`` pitches while the belt runs (``belt.<camera>.gap``);
- the belt stopped (``line.stopped`` as the cameras see it) while the model expects it running
  (``belt.<camera>.stopped``), and a belt whose speed is off by more than 25% (``belt.<camera>.speed``).
Each is reported once per occurrence. The listener only notes times; a timer thread looks for what
did not happen, and events go to the log without waiting for it.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from floor.config import BeltSettings
from inspection.pipeline.events import (
    EngineEvent,
    Inspected,
    LineState,
    LineStateChanged,
    PartEntered,
    PartExited,
    PartTriggered,
    PartUninspected,
)
from sync import drafts
from sync.events import Draft

TWICE = 0.4  # two triggers closer than this share of the pitch: one board counted twice
SPEED_TOLERANCE = 0.25


def _center(xyxy: np.ndarray) -> tuple[float, float]:
    return float(xyxy[0] + xyxy[2]) / 2.0, float(xyxy[1] + xyxy[3]) / 2.0


@dataclass
class _Camera:
    entered: dict[str, tuple[float, tuple[float, float]]] = field(default_factory=dict)
    last_trigger: float | None = None
    pitches: list[float] = field(default_factory=list)
    transits: list[float] = field(default_factory=list)
    speeds: list[float] = field(default_factory=list)
    recent_speeds: deque[float] = field(default_factory=lambda: deque(maxlen=5))
    gap_reported: bool = False
    speed_reported: bool = False
    running: bool = True


class BeltModel:
    """See the module docstring."""

    def __init__(
        self,
        settings: BeltSettings,
        line_id: str,
        edge_id: str,
        publish: Callable[[Sequence[Draft]], Future[Any]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings, self.line_id, self.edge_id, self.publish, self.clock = settings, line_id, edge_id, publish, clock
        self.drifts = 0
        self._cams: dict[str, _Camera] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="belt-model", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    # what the model expects --------------------------------------------------------------------------
    def pitch(self, cam: _Camera) -> float | None:
        if self.settings.pitch_s is not None:
            return self.settings.pitch_s
        n = self.settings.learn_boards
        return statistics.median(cam.pitches[:n]) if len(cam.pitches) >= n else None

    def transit(self, cam: _Camera) -> float | None:
        n = self.settings.learn_boards
        return statistics.median(cam.transits[:n]) if len(cam.transits) >= n else None

    def speed(self, cam: _Camera) -> float | None:
        if self.settings.speed_px_s is not None:
            return self.settings.speed_px_s
        n = self.settings.learn_boards
        return statistics.median(cam.speeds[:n]) if len(cam.speeds) >= n else None

    # the engine's events ----------------------------------------------------------------------------
    def __call__(self, event: EngineEvent) -> None:
        if isinstance(event, Inspected):
            return
        found: list[tuple[str, str, Any, Any]] = []
        with self._lock:
            cam = self._cams.setdefault(event.camera_id, _Camera())
            if isinstance(event, PartEntered):
                cam.entered[event.part_id] = (event.t_capture, _center(event.board_xyxy))
            elif isinstance(event, PartTriggered):
                found += self._triggered(event, cam)
            elif isinstance(event, PartUninspected):
                if cam.entered.pop(event.part_id, None) is not None and self.pitch(cam) is not None:
                    found.append(("missed", "the board at the trigger", f"{event.part_id}: {event.reason}", {}))
            elif isinstance(event, PartExited):
                cam.entered.pop(event.part_id, None)
            elif isinstance(event, LineStateChanged):
                found += self._line_state(event, cam)
        self._report(event.camera_id, found)

    def _triggered(self, event: PartTriggered, cam: _Camera) -> list[tuple[str, str, Any, Any]]:
        out: list[tuple[str, str, Any, Any]] = []
        pitch = self.pitch(cam)
        t = event.t_capture
        if cam.last_trigger is not None:
            interval = t - cam.last_trigger
            if pitch is not None and interval < TWICE * pitch:
                out.append(("twice", f"boards {pitch:.2f} s apart", f"two boards {interval:.2f} s apart", {}))
            else:
                cam.pitches.append(interval)
        cam.last_trigger, cam.gap_reported = t, False
        entered = cam.entered.pop(event.part_id, None)
        if entered is not None and t > entered[0]:
            cam.transits.append(t - entered[0])
            (x0, y0), (x1, y1) = entered[1], _center(event.board_xyxy)
            speed = float(np.hypot(x1 - x0, y1 - y0)) / (t - entered[0])
            cam.speeds.append(speed)
            cam.recent_speeds.append(speed)
            out += self._speed(cam)
        return out

    def _speed(self, cam: _Camera) -> list[tuple[str, str, Any, Any]]:
        expected = self.speed(cam)
        if expected is None or len(cam.recent_speeds) < cam.recent_speeds.maxlen:  # type: ignore[operator]
            return []
        seen = statistics.median(cam.recent_speeds)
        off = abs(seen - expected) / expected > SPEED_TOLERANCE
        if off and not cam.speed_reported:
            cam.speed_reported = True
            return [("speed", f"{expected:.0f} px/s", f"{seen:.0f} px/s", {})]
        cam.speed_reported = cam.speed_reported and off
        return []

    def _line_state(self, event: LineStateChanged, cam: _Camera) -> list[tuple[str, str, Any, Any]]:
        running = event.state is LineState.RUNNING
        was, cam.running = cam.running, running
        if not running and was and self.pitch(cam) is not None:
            return [("stopped", "the belt running", "the belt stopped", {})]
        if running:
            cam.last_trigger = self.clock()  # the gap is timed from the restart
        return []

    # what did not happen ---------------------------------------------------------------------------------
    def check(self) -> None:
        """Gaps and boards that never reached the trigger, as of now."""
        now = self.clock()
        per_camera: dict[str, list[tuple[str, str, Any, Any]]] = {}
        with self._lock:
            for cid, cam in self._cams.items():
                found = per_camera.setdefault(cid, [])
                pitch, transit = self.pitch(cam), self.transit(cam)
                if pitch is not None and cam.running and cam.last_trigger is not None and not cam.gap_reported:
                    quiet = now - cam.last_trigger
                    if quiet > self.settings.gap_factor * pitch:
                        cam.gap_reported = True
                        found.append(("gap", f"a board every {pitch:.2f} s", f"no board for {quiet:.2f} s", {}))
                if transit is None:
                    continue
                for part_id, (t0, _) in list(cam.entered.items()):
                    if now - t0 > self.settings.gap_factor * transit:
                        del cam.entered[part_id]
                        expected = f"{part_id} at the trigger {transit:.2f} s after entering"
                        found.append(("missed", expected, f"not there after {now - t0:.2f} s", {}))
        for cid, found in per_camera.items():
            self._report(cid, found)

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.check_s):
            self.check()

    def _report(self, camera_id: str, found: list[tuple[str, str, Any, Any]]) -> None:
        if not found:
            return
        with self._lock:
            cam = self._cams[camera_id]
            model = {"camera_id": camera_id, "pitch_s": self.pitch(cam), "speed_px_s": self.speed(cam)}
        out = []
        for kind, expected, observed, _ in found:
            difference = {"field": f"belt.{camera_id}.{kind}", "expected": expected, "observed": observed}
            out.append(drafts.twin_drift(self.line_id, self.edge_id, [difference], model))
        self.drifts += len(out)
        self.publish(out)
