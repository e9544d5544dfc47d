"""The engine as the live page sees it: status JSON, annotated frames, evidence images.

It reads ``Engine.status()`` (a frozen snapshot) and the line's twin, never the engine's
insides. The recent verdicts' evidence JPEGs (the cards of the live page) are encoded by a
listener it owns, ``RecentJpegs``, on the verdict thread, as each verdict is made.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from api.annotate import draw, draw_boards
from camera.push import PushSource
from inspection.pipeline.engine import Engine
from inspection.pipeline.events import EngineEvent, Inspected
from inspection.pipeline.status import CameraStatus, EngineStatus
from inspection.pipeline.telemetry import Fault
from inspection.pipeline.trigger import LineTriggerConfig
from inspection.store import encode_jpeg
from sync.errors import UnknownLine
from sync.log import EventLog
from sync.twin import TwinStore

TRIGGER_COLOR = (0, 215, 255)


def fault_json(fault: Fault) -> dict[str, Any]:
    return {"component": fault.component, "reason": fault.reason, "since": fault.since}


class EventLogCollector(Collector):
    """The event-log writer's health on the engine's /metrics (read at scrape time)."""

    def __init__(self, event_log: EventLog) -> None:
        self.event_log = event_log

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        h = self.event_log.health()
        yield GaugeMetricFamily("twinspect_event_log_queued", "Events waiting for the event-log writer", h.queued)
        yield GaugeMetricFamily(
            "twinspect_event_log_failing", "1 while event-log commits fail", 1.0 if h.failing else 0.0
        )
        for name, value, doc in (
            ("retries", h.retries, "Failed event-log commits, retried"),
            ("refused", h.refused, "Events refused because the writer's queue was full"),
            ("failed", h.failed, "Submissions dropped because they can never commit"),
            ("lost", h.lost, "Events not committed when the log stopped"),
        ):
            yield CounterMetricFamily(f"twinspect_event_log_{name}", doc, value)


class RecentJpegs:
    """An engine listener: the evidence JPEG (boxes drawn) of the newest verdicts, by part id, and the
    verdicts of the last ``verdicts`` boards (the live frame colours each board by its own)."""

    def __init__(self, size: int = 24, verdicts: int = 512) -> None:
        self._jpegs: deque[tuple[str, bytes]] = deque(maxlen=size)
        self._verdicts: dict[str, str] = {}
        self._keep = verdicts
        self._lock = threading.Lock()

    def __call__(self, event: EngineEvent) -> None:
        if isinstance(event, Inspected):
            verdict = event.verdict
            jpeg = encode_jpeg(draw(verdict.crop, verdict.defects), 85)
            with self._lock:
                self._jpegs.appendleft((verdict.part_id, jpeg))
                self._verdicts[verdict.part_id] = verdict.outcome.value
                while len(self._verdicts) > self._keep:
                    del self._verdicts[next(iter(self._verdicts))]

    def verdict(self, part_id: str | None) -> str | None:
        """The verdict of a recent board, or None (not inspected yet, or unknown)."""
        with self._lock:
            return self._verdicts.get(part_id) if part_id else None

    def get(self, part_id: str) -> bytes | None:
        with self._lock:
            return next((jpeg for pid, jpeg in self._jpegs if pid == part_id), None)


def recent_json(done: Inspected) -> dict[str, Any]:
    v = done.verdict
    return {
        "part_id": v.part_id,
        "camera_id": v.camera_id,
        "outcome": v.outcome.value,
        "defects": v.defects.boxes_json(),
        "reasons": list(v.reasons),
        "board": done.truth.name if done.truth else None,
        "t_wall": done.t_wall,
    }


def _cameras_json(status: EngineStatus) -> list[dict[str, Any]]:
    out = []
    for cam in status.cameras:
        st = cam.source
        out.append(
            {
                "camera_id": cam.camera_id,
                "state": st.state.value,
                "online": st.online,
                "fps": st.fps,
                "frames_in": st.frames_in,
                "dropped": st.dropped,
                "reconnects": st.reconnects,
                "last_error": st.last_error,
            }
        )
    return out


def _run_counters(status: EngineStatus) -> dict[str, Any]:
    """This run's counters (each from its home in the snapshot)."""
    seen = status.seen
    inspected = sum(c.parts.inspected for c in status.cameras)
    return {
        "boards_seen": seen,
        "inspected": inspected,
        "uninspected": sum(c.parts.uninspected for c in status.cameras),
        "coverage": inspected / seen if seen else 1.0,
        **dict(status.verdicts),
    }


class LiveView:
    """Implements api.services.EngineView over a running Engine.

    With the line's twin, the counters are the twin's: they survive restarts (the engine's
    own counters start at zero with every run).
    """

    def __init__(self, engine: Engine, twins: TwinStore | None = None) -> None:
        self.engine, self.twins = engine, twins
        self.jpegs = RecentJpegs()
        engine.add_listener(self.jpegs)
        self._frame_cache: dict[str, tuple[tuple[int, tuple[str | None, ...]], bytes]] = {}
        if twins is not None:
            with contextlib.suppress(ValueError):  # already there (a second view of the same engine)
                engine.telemetry.registry.register(EventLogCollector(twins.log))

    def start(self) -> None:
        self.engine.start()

    def stop(self) -> None:
        self.engine.stop()

    def metrics(self) -> bytes:
        return self.engine.telemetry.render()

    def push(self, camera_id: str, data: bytes, content_type: str | None) -> int:
        return self.engine.push(camera_id, data, content_type)

    def camera_token_ok(self, camera_id: str, token: str | None) -> bool:
        return self.engine.camera_token_ok(camera_id, token)

    def push_limit(self, camera_id: str) -> int | None:
        source = self.engine.sources.get(camera_id)
        return source.max_bytes if isinstance(source, PushSource) else None

    def status(self) -> dict[str, Any]:
        status = self.engine.status()
        cameras = _cameras_json(status)
        counters = {**_run_counters(status), **self._twin_counters(status.line_id)}
        counters["fps"] = sum(c["fps"] for c in cameras)
        faults = [fault_json(f) for f in self._faults(status)]
        return {
            "line_id": status.line_id,
            "line_state": status.line_state.value,
            "health": {"ready": not faults, "faults": faults},
            "storage": dict(status.storage),
            "counters": counters,
            "cameras": cameras,
            "recent": [recent_json(done) for done in status.recent],
        }

    def faults(self) -> list[Fault]:
        """What fails now: the engine's faults (storage refusing its writes) and the event log's."""
        return self._faults(self.engine.status())

    def readiness(self) -> dict[str, Any]:
        """For /readyz and /healthz: whether each model answers (loaded, threads alive), each camera's state."""
        workers = (self.engine.part_worker, self.engine.defect_worker)
        cameras = {
            c.camera_id: {"state": c.source.state.value, "online": c.source.online}
            for c in self.engine.status().cameras
        }
        return {"models": {w.name: w.running for w in workers}, "cameras": cameras}

    def _faults(self, status: EngineStatus) -> list[Fault]:
        out = list(status.faults)
        health = self.twins.log.health() if self.twins is not None else None
        if health is not None and health.failing is not None:
            out.append(Fault("event-log", health.failing, health.since or 0.0))
        return out

    def _twin_counters(self, line_id: str) -> dict[str, Any]:
        """Counters of the line's twin (all runs on this data dir), or nothing before its first event."""
        if self.twins is None:
            return {}
        try:
            doc = json.loads(self.twins.document_text(line_id)[1])
        except UnknownLine:
            return {}
        c, q = doc["features"]["counters"]["properties"], doc["features"]["quality"]["properties"]
        return {
            "boards_seen": c["entered"],
            "inspected": c["inspected"],
            "uninspected": c["uninspected"],
            "coverage": q["coverage"] if q["coverage"] is not None else 1.0,
            **c["verdicts"],
            "revision": doc["revision"],
        }

    def set_line_recipe(self, recipe: str | None) -> None:
        self.engine.set_line_recipe(recipe)

    def boards_in_view(self) -> dict[str, int]:
        return {cam.camera_id: cam.boards_in_view for cam in self.engine.status().cameras}

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        cam = self.engine.status().camera(camera_id)
        if cam is None or cam.latest is None or cam.boards is None:
            return None
        frame = cam.latest
        boards = self._boards(cam)
        key = (frame.seq, tuple(verdict for _, verdict, _ in boards))
        cached = self._frame_cache.get(camera_id)
        if cached and cached[0] == key:
            return cached[1]
        image = draw_boards(frame.image, boards)
        trig = self.engine.config.parts.trigger
        if isinstance(trig, LineTriggerConfig):
            cv2.line(image, tuple(int(v) for v in trig.start), tuple(int(v) for v in trig.end), TRIGGER_COLOR, 2)
        else:
            cv2.polylines(image, [np.array(trig.polygon, np.int32)], True, TRIGGER_COLOR, 2)
        data = encode_jpeg(image, 80)
        self._frame_cache[camera_id] = (key, data)
        return data

    def _boards(self, cam: CameraStatus) -> list[tuple[tuple[float, float, float, float], str | None, str]]:
        """The boards of the latest frame, each with its verdict (None: not inspected yet) and its label;
        before any board is tracked, the part model's boxes (grey)."""
        if not cam.in_view and cam.boards is not None:
            return [((b[0], b[1], b[2], b[3]), None, "") for b in cam.boards.xyxy.tolist()]
        out = []
        for board in cam.in_view:
            verdict = self.jpegs.verdict(board.part_id)
            out.append((board.xyxy, verdict, verdict.upper() if verdict else ""))
        return out

    def evidence_jpeg(self, part_id: str) -> bytes | None:
        return self.jpegs.get(part_id)
