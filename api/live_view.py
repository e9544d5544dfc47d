"""The engine as the live page sees it: status JSON, annotated frames, evidence images."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from camera.push import PushSource
from inspection.pipeline.annotate import draw
from inspection.pipeline.engine import Engine
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


class LiveView:
    """Implements api.services.EngineView over a running Engine.

    With the line's twin, the counters are the twin's: they survive restarts (the engine's
    own counters start at zero with every run).
    """

    def __init__(self, engine: Engine, twins: TwinStore | None = None) -> None:
        self.engine, self.twins = engine, twins
        self._jpeg_cache: dict[str, tuple[int, bytes]] = {}
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
        eng = self.engine
        seen = sum(loop.parts.counters.seen for loop in eng.loops)
        inspected = sum(loop.parts.counters.inspected for loop in eng.loops)
        outcomes = dict(eng.outcomes)
        cameras: list[dict[str, Any]] = []
        for cid, src in eng.sources.items():
            st = src.stats()
            cameras.append(
                {
                    "camera_id": cid,
                    "state": st.state.value,
                    "online": st.online,
                    "fps": st.fps,
                    "frames_in": st.frames_in,
                    "dropped": st.dropped,
                    "reconnects": st.reconnects,
                    "last_error": st.last_error,
                }
            )
        recent = []
        for done, _ in eng.sink.recent_list():
            v = done.verdict
            recent.append(
                {
                    "part_id": v.part_id,
                    "camera_id": v.camera_id,
                    "outcome": v.outcome.value,
                    "defects": v.defects.boxes_json(),
                    "reasons": list(v.reasons),
                    "board": done.truth.name if done.truth else None,
                    "t_wall": done.t_wall,
                }
            )
        counters: dict[str, Any] = {
            "boards_seen": seen,
            "inspected": inspected,
            "uninspected": sum(loop.parts.counters.uninspected for loop in eng.loops),
            "coverage": inspected / seen if seen else 1.0,
            **{k: int(v) for k, v in outcomes.items()},
        }
        counters.update(self._twin_counters())
        counters["fps"] = sum(c["fps"] for c in cameras)
        faults = [fault_json(f) for f in self.faults()]
        return {
            "line_id": eng.config.line_id,
            "line_state": eng.line_state().value,
            "health": {"ready": not faults, "faults": faults},
            "storage": eng.sink.storage(),
            "counters": counters,
            "cameras": cameras,
            "recent": recent,
        }

    def faults(self) -> list[Fault]:
        """What fails now: the engine's faults (storage refusing its writes) and the event log's."""
        out = self.engine.faults()
        health = self.twins.log.health() if self.twins is not None else None
        if health is not None and health.failing is not None:
            out.append(Fault("event-log", health.failing, health.since or 0.0))
        return out

    def _twin_counters(self) -> dict[str, Any]:
        """Counters of the line's twin (all runs on this data dir), or nothing before its first event."""
        if self.twins is None:
            return {}
        try:
            doc = json.loads(self.twins.document_text(self.engine.config.line_id)[1])
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
        return {loop.camera_id: (len(loop.latest[1]) if loop.latest else 0) for loop in self.engine.loops}

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        loop = next((lp for lp in self.engine.loops if lp.camera_id == camera_id), None)
        if loop is None or loop.latest is None:
            return None
        frame, boards = loop.latest
        cached = self._jpeg_cache.get(camera_id)
        if cached and cached[0] == frame.seq:
            return cached[1]
        image = draw(frame.image, boards, thickness=3)
        trig = self.engine.config.parts.trigger
        if isinstance(trig, LineTriggerConfig):
            cv2.line(image, tuple(int(v) for v in trig.start), tuple(int(v) for v in trig.end), TRIGGER_COLOR, 2)
        else:
            cv2.polylines(image, [np.array(trig.polygon, np.int32)], True, TRIGGER_COLOR, 2)
        data = encode_jpeg(image, 80)
        self._jpeg_cache[camera_id] = (frame.seq, data)
        return data

    def evidence_jpeg(self, part_id: str) -> bytes | None:
        for done, jpeg in self.engine.sink.recent_list():
            if done.verdict.part_id == part_id:
                return jpeg
        return None
