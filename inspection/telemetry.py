"""Prometheus metrics of the engine, on a registry of its own (one per engine, never global).

Counters and histograms are updated by the pipeline as things happen; camera figures
(state, fps, frames in, drops) are read from the sources at scrape time by a collector,
so nothing polls them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from camera.frame import SourceState
from inspection.worker import BatchStats

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32)


@dataclass(frozen=True)
class CameraFigures:
    """What the camera collector needs from one source at scrape time."""

    camera_id: str
    state: SourceState
    fps: float
    frames_in: int
    dropped: int
    reconnects: int


class _CameraCollector(Collector):
    def __init__(self, read: Callable[[], Iterable[CameraFigures]]) -> None:
        self._read = read

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        frames = CounterMetricFamily("twinspect_camera_frames", "Frames captured per camera", labels=["camera"])
        dropped = CounterMetricFamily("twinspect_camera_frames_dropped",
                                      "Frames dropped by the full buffer (oldest first)", labels=["camera"])
        reconnects = CounterMetricFamily("twinspect_camera_reconnects", "Reconnect attempts", labels=["camera"])
        fps = GaugeMetricFamily("twinspect_camera_fps", "Measured capture rate", labels=["camera"])
        state = GaugeMetricFamily("twinspect_camera_state", "1 for the camera's current state",
                                  labels=["camera", "state"])
        for cam in self._read():
            frames.add_metric([cam.camera_id], cam.frames_in)
            dropped.add_metric([cam.camera_id], cam.dropped)
            reconnects.add_metric([cam.camera_id], cam.reconnects)
            fps.add_metric([cam.camera_id], cam.fps)
            for s in SourceState:
                state.add_metric([cam.camera_id, s.value], 1.0 if s == cam.state else 0.0)
        return [frames, dropped, reconnects, fps, state]


class Telemetry:
    """All engine metrics; ``render()`` gives the Prometheus text format."""

    def __init__(self, cameras: Callable[[], Iterable[CameraFigures]] | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.inference_seconds = Histogram("twinspect_inference_seconds", "Model time per batch",
                                           ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("twinspect_batch_size", "Images per inference batch", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.queue_wait_seconds = Histogram("twinspect_inference_queue_wait_seconds",
                                            "Wait of the oldest image of a batch", ["model"],
                                            buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("twinspect_inference_queue_depth", "Images waiting for a model", ["model"],
                                 registry=r)
        self.boards_seen = Counter("twinspect_boards_seen", "Boards that entered the view", ["camera"], registry=r)
        self.boards_inspected = Counter("twinspect_boards_inspected", "Boards inspected", ["camera"], registry=r)
        self.boards_uninspected = Counter("twinspect_boards_uninspected", "Boards that left uninspected",
                                          ["camera"], registry=r)
        self.verdicts = Counter("twinspect_verdicts", "Verdicts by outcome", ["outcome"], registry=r)
        self.coverage = Gauge("twinspect_inspection_coverage", "Inspected / seen boards", ["camera"], registry=r)
        self.capture_to_verdict = Histogram("twinspect_capture_to_verdict_seconds",
                                            "From frame capture to verdict", buckets=LATENCY_BUCKETS, registry=r)
        if cameras is not None:
            r.register(_CameraCollector(cameras))

    def observe_batch(self, stats: BatchStats) -> None:
        self.inference_seconds.labels(stats.model).observe(stats.infer_s)
        self.batch_size.labels(stats.model).observe(stats.size)
        self.queue_wait_seconds.labels(stats.model).observe(stats.max_queue_wait_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
