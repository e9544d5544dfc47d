"""Turns finished defect detections into verdicts, stores them in batches, keeps the recent ones.

Runs on one thread of its own so that neither the cameras nor the inference workers
pay for rules, JPEG encoding or database commits. Records are committed in batches
(up to ``batch`` records or every ``interval_s``), each batch in one transaction.

With an ``outbox`` (the event log), a batch is handed to it instead: it commits the
inspection rows and their ``part.inspected`` events in one transaction, so the feed
never announces a verdict the database lacks, nor the reverse.

Faults: each verdict is made and shown (listeners, recent list) at once; storing it may
take longer. ``VerdictBacklog`` holds what is not stored yet and retries it while the
disk is full or the database refuses writes (see inspection/pipeline/verdict_backlog.py). The
queue in front of the thread is bounded (``max_queue``): a put that finds it full for
``put_timeout_s`` is dropped, counted and logged. The thread is supervised: an exception
(a failing listener included) is logged and counted, and the thread goes on. A board the
defect model failed on is stored ``uncertain`` with the reason. ``stop`` stores what is
queued; while storage fails it tries for at most ``stop_grace_s``, then counts and logs
every board not stored, by part id.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from camera.frame import BoardTruth
from inspection.core.detections import Detections
from inspection.core.outcome import Outcome
from inspection.pipeline.annotate import draw
from inspection.pipeline.parts import InspectRequest
from inspection.pipeline.reference_stage import Prepared
from inspection.pipeline.rules import RulesConfig, apply_rules
from inspection.pipeline.telemetry import Telemetry
from inspection.pipeline.verdict import Verdict, inspection_record
from inspection.pipeline.verdict_backlog import Outbox, StoreLimits, VerdictBacklog
from inspection.store import EvidenceStore, InspectionStore, encode_jpeg

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Inspected:
    """A finished inspection: the verdict plus what the engine knew about the board."""

    verdict: Verdict
    truth: BoardTruth | None  # simulated sources: which board this was
    frames_seen: int  # frames the board was tracked in before its inspection
    latency_s: float  # from frame capture to verdict
    t_wall: float  # capture time (wall clock)


@dataclass(frozen=True, eq=False)
class PendingInspection:
    request: InspectRequest
    defects: Detections | None  # no boxes (or None) when the defect model failed
    error: str | None  # why the defect model failed: the board is stored uncertain with it
    truth: BoardTruth | None
    frames_seen: int
    prepared: Prepared | None = None  # reference models: the aligned board, its golden and differences


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str


@dataclass(frozen=True)
class SinkLimits:
    """The verdict queue's bound and the stop grace; ``store``: the backlog's (see StoreLimits)."""

    max_queue: int = 1024  # boards waiting for the verdict thread
    put_timeout_s: float = 10.0  # a put waits this long for room, then the board is dropped (counted)
    stop_grace_s: float = 5.0  # at stop, while storage fails: how long to keep trying
    store: StoreLimits = field(default_factory=StoreLimits)


_FLUSH = object()
_WAKE = object()
_NO_CROP = np.zeros((0, 0, 3), np.uint8)

__all__ = ["Inspected", "ModelInfo", "Outbox", "PendingInspection", "SinkLimits", "VerdictSink"]


def failed_verdict(req: InspectRequest, error: str, names: tuple[str, ...], prepared: Prepared | None) -> Verdict:
    """The verdict of a board the defect model failed on: uncertain, with the reason."""
    return Verdict(
        part_id=req.part_id,
        camera_id=req.camera_id,
        track_id=req.track_id,
        outcome=Outcome.UNCERTAIN,
        defects=Detections.empty(names),
        crop=req.crop,
        board_xyxy=req.crop_xyxy.astype(np.float32),
        frame_seq=req.frame_seq,
        t_capture=req.t_capture,
        reasons=(f"uncertain: the defect model failed: {error}",),
        reference=prepared.info if prepared is not None else None,
    )


class VerdictSink:
    """Applies the rules, stores verdicts in batches, and publishes each to the listeners."""

    def __init__(
        self,
        rules: RulesConfig,
        line_id: str,
        model: ModelInfo,
        store: InspectionStore | None,
        evidence: EvidenceStore | None,
        listeners: list[Callable[[Any], None]],
        recent: int = 24,
        batch: int = 64,
        interval_s: float = 0.2,
        outbox: Outbox | None = None,
        outbox_flush: Callable[[float], bool] | None = None,
        telemetry: Telemetry | None = None,
        limits: SinkLimits | None = None,
    ) -> None:
        self.rules, self.line_id, self.model = rules, line_id, model
        self.outbox, self.outbox_flush = outbox, outbox_flush
        self.store, self.evidence, self.listeners = store, evidence, listeners
        self.limits = limits or SinkLimits(store=StoreLimits(batch=batch, interval_s=interval_s))
        self.telemetry = telemetry or Telemetry()
        self.health = self.telemetry.health
        self.recent: deque[tuple[Inspected, bytes]] = deque(maxlen=recent)
        self._queue: queue.Queue[PendingInspection | object] = queue.Queue(maxsize=self.limits.max_queue)
        self.backlog = VerdictBacklog(store, evidence, outbox, self.limits.store, self.telemetry, self._wake)
        self._thread = threading.Thread(target=self._run, name="verdicts", daemon=True)
        self._stopping = threading.Event()
        self._stop_at = self._give_up_at = 0.0
        self._flushes: list[tuple[int, threading.Event]] = []
        self._lock = threading.Lock()
        self.failed = 0  # boards dropped before a verdict (the queue was full)

    def start(self) -> None:
        self._thread.start()

    def put(self, item: PendingInspection) -> None:
        """Hand a board over; waits up to ``put_timeout_s`` for room, then drops it (counted, logged)."""
        try:
            self._queue.put(item, timeout=self.limits.put_timeout_s)
        except queue.Full:
            self.failed += 1
            self.telemetry.queue_dropped.labels("verdicts").inc()
            self.telemetry.verdicts_unstored.labels("lost").inc()
            log.error(
                "verdict queue full (%d boards) for %.0f s: board %s dropped",
                self.limits.max_queue,
                self.limits.put_timeout_s,
                item.request.part_id,
            )

    def _wake(self) -> None:
        with contextlib.suppress(queue.Full):  # full: the thread has plenty to wake up for
            self._queue.put_nowait(_WAKE)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is stored (or counted as not stored); False on timeout."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        done = threading.Event()
        try:
            self._queue.put((_FLUSH, done), timeout=max(0.0, timeout))
        except queue.Full:
            return False
        while not done.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
            if not self._thread.is_alive() or time.monotonic() >= deadline:
                return False
        return self.outbox_flush is None or self.outbox_flush(max(0.1, deadline - time.monotonic()))

    def stop(self, timeout: float = 30.0) -> None:
        """Store what is queued and stop; while storage fails, give up after ``stop_grace_s`` (counted, logged)."""
        if not self._thread.is_alive():
            if self._thread.ident is not None and not self._queue.empty():  # it died: never wait on a dead queue
                log.error("the verdict thread is not running: %d queued boards not stored", self._queue.qsize())
            return
        self._stop_at = time.monotonic()
        self._give_up_at = self._stop_at + timeout
        self._stopping.set()
        self._wake()
        self._thread.join(timeout + 1.0)

    def recent_list(self) -> list[tuple[Inspected, bytes]]:
        with self._lock:
            return list(self.recent)

    def storage(self) -> dict[str, Any]:
        """What the live status shows of storage: state, backlog, counters, faults."""
        return {**self.backlog.figures(), "dropped": self.failed}

    # the thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        wait = self.limits.store.interval_s
        while True:
            try:
                wait = self._step(wait)
                if wait < 0:
                    return
            except Exception as exc:  # supervised: log, count, go on
                self.health.error("verdicts", exc)
                wait = self.limits.store.interval_s

    def _step(self, wait: float) -> float:
        """One turn of the thread; returns how long the next may wait for an item (< 0: finished)."""
        try:
            item = self._queue.get(timeout=wait)
        except queue.Empty:
            item = None
        if isinstance(item, tuple) and item and item[0] is _FLUSH:
            self._flushes.append((self.backlog.last_seq, item[1]))
        elif isinstance(item, PendingInspection):
            self._accept(item)
        stopping = self._stopping.is_set()
        wait = self.backlog.step(force=bool(self._flushes) or stopping)
        self._release_flushes()
        if stopping and self._finished():
            self._release_flushes(everything=True)
            return -1.0
        return 0.0 if not self._queue.empty() else wait

    def _finished(self) -> bool:
        if self._queue.empty() and not self.backlog.pending():
            return True
        now = time.monotonic()
        grace_over = self.backlog.failing() and now - self._stop_at >= self.limits.stop_grace_s
        if not grace_over and now < self._give_up_at:
            return False
        while not self._queue.empty():  # shown to the listeners, then counted with the rest
            item = self._queue.get_nowait()
            if isinstance(item, PendingInspection):
                self._accept(item)
        self.backlog.give_up(
            "the engine stopped while storage failed" if grace_over else "the engine stopped before they were stored"
        )
        return True

    def _release_flushes(self, everything: bool = False) -> None:
        lowest = self.backlog.lowest_seq()
        keep = []
        for seq, event in self._flushes:
            if everything or lowest is None or lowest > seq:
                event.set()
            else:
                keep.append((seq, event))
        self._flushes = keep

    def _accept(self, item: PendingInspection) -> None:
        """Make the verdict, show it, and queue it for storing (a board that cannot be is counted)."""
        req = item.request
        if item.error is not None:
            names = item.defects.class_names if item.defects is not None else ()
            verdict = failed_verdict(req, item.error, names, item.prepared)
        else:
            assert item.defects is not None
            verdict = apply_rules(req, item.defects, self.rules, item.prepared)
        done = Inspected(verdict, item.truth, item.frames_seen, time.monotonic() - req.t_capture, req.t_wall)
        self._show(done)
        if not self.backlog.stores:
            return
        record, jpeg = None, None
        try:
            if self.store is not None and self.evidence is not None:
                jpeg = encode_jpeg(verdict.crop, 90)
                record = inspection_record(
                    verdict,
                    line_id=self.line_id,
                    model_name=self.model.name,
                    model_version=self.model.version,
                    captured_at=datetime.fromtimestamp(req.t_wall, UTC),
                    evidence_sha256="",
                )
        except Exception as exc:  # a crop that cannot be encoded: counted as refused, never silently gone
            self.backlog.refuse(req.part_id, exc)
            return
        self.backlog.add(replace(done, verdict=replace(verdict, crop=_NO_CROP)), record, jpeg)

    def _show(self, done: Inspected) -> None:
        """The recent list (the live page) and the listeners; a failure of either is counted, never fatal."""
        verdict = done.verdict
        try:
            jpeg = encode_jpeg(draw(verdict.crop, verdict.defects), 85)
            with self._lock:
                self.recent.appendleft((done, jpeg))
        except Exception as exc:
            self.health.error("verdict recent list", exc, verdict.part_id)
        for listener in self.listeners:
            try:
                listener(done)
            except Exception as exc:  # one broken listener must not stop the verdicts
                self.health.error("verdict listener", exc, f"{type(listener).__name__} of {verdict.part_id}")
