"""Prometheus metrics of the engine, on a registry of its own (one per engine, never global), and its health.

Histograms and the stage error counter are updated by the pipeline as things happen. Counts
that have a home of their own are read from it at scrape time (``read_at_scrape``): camera
figures (state, fps, frames in, drops) from the sources, part counts from the part trackers,
verdicts from the engine, storage counts from the verdict backlog; so nothing is counted twice
and nothing polls.

``Health`` is where the stages report what goes wrong: ``error(stage, exc)`` for an
exception a stage thread caught and went on from (logged, at most once per stage every
``log_every_s`` with a count of the ones in between, and counted in
``twinspect_stage_errors_total``), ``fail(component, reason)`` / ``clear(component)`` for
a lasting fault (storage refusing writes) that /readyz and the live status show until it
clears (``twinspect_fault``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from camera.frame import SourceState
from inspection.inference.worker import BatchStats

log = logging.getLogger(__name__)

# From a GPU's few milliseconds a batch to a busy CPU's seconds: the shipped defect model took 4.2 s
# for a batch of 8 on two cores beside a training job (100 of 131 batches fell past the old 2.5 s
# top); no step wider than 2.5x, so each quantile Prometheus estimates is within a bucket of it.
LATENCY_BUCKETS = (
    0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0
)  # fmt: skip
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


@dataclass(frozen=True)
class Figure:
    """One metric read at scrape time from the place that counts it: a counter or gauge, its samples by label."""

    name: str
    doc: str
    kind: Literal["counter", "gauge"]
    labels: tuple[str, ...] = ()
    samples: tuple[tuple[tuple[str, ...], float], ...] = ()


class _FigureCollector(Collector):
    def __init__(self, read: Callable[[], Iterable[Figure]]) -> None:
        self._read = read

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        for f in self._read():
            family_type = CounterMetricFamily if f.kind == "counter" else GaugeMetricFamily
            family = family_type(f.name, f.doc, labels=list(f.labels))
            for labels, value in f.samples:
                family.add_metric(list(labels), value)
            yield family


@dataclass
class StageClock:
    """Total seconds and counts per pipeline stage (for replay reports)."""

    totals: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, stage: str, seconds: float, n: int = 1) -> None:
        with self.lock:
            self.totals[stage] = self.totals.get(stage, 0.0) + seconds
            self.counts[stage] = self.counts.get(stage, 0) + n

    def mean_ms(self) -> dict[str, float]:
        with self.lock:
            return {k: round(1000 * v / max(1, self.counts[k]), 2) for k, v in self.totals.items()}


class _CameraCollector(Collector):
    def __init__(self, read: Callable[[], Iterable[CameraFigures]]) -> None:
        self._read = read

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        frames = CounterMetricFamily("twinspect_camera_frames", "Frames captured per camera", labels=["camera"])
        dropped = CounterMetricFamily(
            "twinspect_camera_frames_dropped", "Frames dropped by the full buffer (oldest first)", labels=["camera"]
        )
        reconnects = CounterMetricFamily("twinspect_camera_reconnects", "Reconnect attempts", labels=["camera"])
        fps = GaugeMetricFamily("twinspect_camera_fps", "Measured capture rate", labels=["camera"])
        state = GaugeMetricFamily(
            "twinspect_camera_state", "1 for the camera's current state", labels=["camera", "state"]
        )
        for cam in self._read():
            frames.add_metric([cam.camera_id], cam.frames_in)
            dropped.add_metric([cam.camera_id], cam.dropped)
            reconnects.add_metric([cam.camera_id], cam.reconnects)
            fps.add_metric([cam.camera_id], cam.fps)
            for s in SourceState:
                state.add_metric([cam.camera_id, s.value], 1.0 if s == cam.state else 0.0)
        return [frames, dropped, reconnects, fps, state]


@dataclass(frozen=True)
class Fault:
    """A lasting fault of one component: what fails, why (the last error), since when (wall clock)."""

    component: str
    reason: str
    since: float


class Health:
    """Faults and caught stage errors; thread-safe. See the module docstring."""

    def __init__(self, errors: Counter | None = None, log_every_s: float = 10.0) -> None:
        self._errors = errors
        self.log_every_s = log_every_s
        self._faults: dict[str, Fault] = {}
        self._last_log: dict[str, tuple[float, int]] = {}  # stage -> (when logged, errors since)
        self._lock = threading.Lock()

    def error(self, stage: str, exc: BaseException, what: str = "") -> None:
        """A stage thread caught ``exc`` and goes on: count it, log it (rate-limited per stage)."""
        if self._errors is not None:
            self._errors.labels(stage).inc()
        now = time.monotonic()
        with self._lock:
            last, since = self._last_log.get(stage, (-1e18, 0))
            if now - last < self.log_every_s:
                self._last_log[stage] = (last, since + 1)
                return
            self._last_log[stage] = (now, 0)
        more = f" ({since} more since the last report)" if since else ""
        log.error("%s failed%s%s; it goes on", stage, f" on {what}" if what else "", more, exc_info=exc)

    def fail(self, component: str, reason: str) -> None:
        """``component`` is failing (keeps the first time it did, updates the reason)."""
        with self._lock:
            old = self._faults.get(component)
            self._faults[component] = Fault(component, reason, old.since if old else time.time())
        if old is None:
            log.error("%s failing: %s", component, reason)

    def clear(self, component: str) -> None:
        with self._lock:
            old = self._faults.pop(component, None)
        if old is not None:
            log.warning("%s recovered after %.1f s", component, time.time() - old.since)

    def faults(self) -> list[Fault]:
        with self._lock:
            return sorted(self._faults.values(), key=lambda f: f.component)


class _HealthCollector(Collector):
    def __init__(self, health: Health) -> None:
        self._health = health

    def collect(self) -> Iterable[GaugeMetricFamily]:
        fault = GaugeMetricFamily(
            "twinspect_fault", "1 while a component fails (storage refusing writes)", labels=["component"]
        )
        for f in self._health.faults():
            fault.add_metric([f.component], 1.0)
        return [fault]


class Telemetry:
    """All engine metrics; ``render()`` gives the Prometheus text format."""

    def __init__(self, cameras: Callable[[], Iterable[CameraFigures]] | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.inference_seconds = Histogram(
            "twinspect_inference_seconds", "Model time per batch", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "twinspect_batch_size", "Images per inference batch", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self.queue_wait_seconds = Histogram(
            "twinspect_inference_queue_wait_seconds",
            "Wait of the oldest image of a batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("twinspect_inference_queue_depth", "Images waiting for a model", ["model"], registry=r)
        self.capture_to_verdict = Histogram(
            "twinspect_capture_to_verdict_seconds", "From frame capture to verdict", buckets=LATENCY_BUCKETS, registry=r
        )
        self.stage_errors = Counter(
            "twinspect_stage_errors", "Exceptions a stage thread caught and went on from", ["stage"], registry=r
        )
        self.store_retries = Counter(
            "twinspect_store_retries", "Failed storage attempts, retried", ["what"], registry=r
        )
        self.health = Health(self.stage_errors)
        r.register(_HealthCollector(self.health))
        if cameras is not None:
            r.register(_CameraCollector(cameras))

    def read_at_scrape(self, read: Callable[[], Iterable[Figure]]) -> None:
        """Export counts whose one home is elsewhere (a tracker, the verdict backlog): ``read`` runs at scrape time."""
        self.registry.register(_FigureCollector(read))

    def observe_batch(self, stats: BatchStats) -> None:
        self.inference_seconds.labels(stats.model).observe(stats.infer_s)
        self.batch_size.labels(stats.model).observe(stats.size)
        self.queue_wait_seconds.labels(stats.model).observe(stats.max_queue_wait_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
