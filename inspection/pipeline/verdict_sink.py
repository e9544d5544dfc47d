"""The verdict thread: applies the rules to each board's defect detections, then hands the verdict on.

Runs on one thread of its own so that neither the cameras nor the inference workers pay for
the rules or for storing. Each verdict is handed on at once, twice: to the engine's listeners
(each guarded: one that raises is counted and logged, never stops the thread; the live view's
JPEG ring is one of them) and to the ``VerdictBacklog``, which stores it through the engine's
``Recorder`` in batches (up to ``batch`` boards or every ``interval_s``, each batch in one
transaction) and retries while the disk is full or the database refuses writes (see
inspection/pipeline/verdict_backlog.py).

Faults: the queue in front of the thread is bounded (``max_queue``): a put that finds it
full for ``put_timeout_s`` is dropped, counted and logged. The thread is supervised: an
exception is logged and counted, and the thread goes on. A board the defect model failed on
is stored ``uncertain`` with the reason. ``stop`` stores what is queued; while storage fails
it tries for at most ``stop_grace_s``, then counts and logs every board not stored, by part id.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from camera.frame import BoardTruth
from inspection.core.detections import Detections
from inspection.core.outcome import Outcome
from inspection.pipeline.events import Inspected, Listeners
from inspection.pipeline.parts import InspectRequest
from inspection.pipeline.recording import ModelInfo, Recorder
from inspection.pipeline.reference_stage import Prepared
from inspection.pipeline.rules import RulesConfig, apply_rules, evidence_crop
from inspection.pipeline.telemetry import Figure, Telemetry
from inspection.pipeline.verdict import Verdict
from inspection.pipeline.verdict_backlog import StoreLimits, VerdictBacklog
from inspection.store import EvidenceStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class PendingInspection:
    request: InspectRequest
    defects: Detections | None  # no boxes (or None) when the defect model failed
    error: str | None  # why the defect model failed: the board is stored uncertain with it
    truth: BoardTruth | None
    frames_seen: int
    prepared: Prepared | None = None  # reference models: the aligned board, its golden and differences
    model: ModelInfo | None = None  # the defect model that ran on it (None: the engine's first one)


@dataclass(frozen=True)
class SinkLimits:
    """The verdict queue's bound and the stop grace; ``store``: the backlog's (see StoreLimits)."""

    max_queue: int = 1024  # boards waiting for the verdict thread
    put_timeout_s: float = 10.0  # a put waits this long for room, then the board is dropped (counted)
    stop_grace_s: float = 5.0  # at stop, while storage fails: how long to keep trying
    store: StoreLimits = field(default_factory=StoreLimits)


UNSTORED_DOC = (
    "Verdicts not stored as made: evidence_dropped (stored uncertain with a placeholder image), "
    "refused (storage rejected the record), lost (over the backlog bound, at stop, or the verdict queue was full)"
)
_FLUSH = object()
_WAKE = object()


def failed_verdict(req: InspectRequest, error: str, names: tuple[str, ...], prepared: Prepared | None) -> Verdict:
    """The verdict of a board the defect model failed on: uncertain, with the reason."""
    return Verdict(
        part_id=req.part_id,
        camera_id=req.camera_id,
        track_id=req.track_id,
        outcome=Outcome.UNCERTAIN,
        defects=Detections.empty(names),
        crop=evidence_crop(req, prepared),
        board_xyxy=req.crop_xyxy.astype(np.float32),
        frame_seq=req.frame_seq,
        t_capture=req.t_capture,
        reasons=(f"uncertain: the defect model failed: {error}",),
        reference=prepared.info if prepared is not None else None,
    )


class VerdictSink:
    """Applies the rules, hands each verdict to the listeners and to the backlog that records it."""

    def __init__(
        self,
        rules: RulesConfig,
        line_id: str,
        model: ModelInfo,
        recorder: Recorder | None,
        evidence: EvidenceStore | None,
        listeners: Listeners | None = None,
        telemetry: Telemetry | None = None,
        limits: SinkLimits | None = None,
    ) -> None:
        self.rules, self.recorder = rules, recorder
        self.limits = limits or SinkLimits()
        self.telemetry = telemetry or Telemetry()
        self.health = self.telemetry.health
        self.listeners = listeners or Listeners(self.health)
        self._queue: queue.Queue[PendingInspection | object] = queue.Queue(maxsize=self.limits.max_queue)
        self.backlog = VerdictBacklog(recorder, evidence, line_id, model, self.limits.store, self.telemetry, self._wake)
        self.telemetry.read_at_scrape(self._figures)
        self._thread = threading.Thread(target=self._run, name="verdicts", daemon=True)
        self._stopping = threading.Event()
        self._stop_at = self._give_up_at = 0.0
        self._flushes: list[tuple[int, threading.Event]] = []
        self.failed = 0  # boards dropped before a verdict (the queue was full)

    def start(self) -> None:
        self._thread.start()

    def put(self, item: PendingInspection) -> None:
        """Hand a board over; waits up to ``put_timeout_s`` for room, then drops it (counted, logged)."""
        try:
            self._queue.put(item, timeout=self.limits.put_timeout_s)
        except queue.Full:
            self.failed += 1
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
        return self.recorder is None or self.recorder.flush(max(0.1, deadline - time.monotonic()))

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

    def storage(self) -> dict[str, Any]:
        """What the live status shows of storage: state, backlog, counters, faults."""
        return {**self.backlog.figures(), "dropped": self.failed}

    def _figures(self) -> list[Figure]:
        """The storage counters, read from their homes (this thread's drops, the backlog) at scrape time."""
        b = self.backlog
        unstored = (("evidence_dropped",), b.reduced), (("refused",), b.refused), (("lost",), b.lost + self.failed)
        return [
            Figure("twinspect_verdicts_stored", "Verdicts committed to storage", "counter", (), (((), b.stored),)),
            Figure("twinspect_verdicts_unstored", UNSTORED_DOC, "counter", ("reason",), unstored),
            Figure(
                "twinspect_queue_dropped",
                "Items a full queue refused (logged)",
                "counter",
                ("queue",),
                ((("verdicts",), self.failed),),
            ),
            Figure("twinspect_store_backlog", "Verdicts waiting to be stored", "gauge", (), (((), b.pending()),)),
        ]

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
        """Make the verdict, hand it to the listeners, and queue it for recording."""
        req = item.request
        if item.error is not None:
            names = item.defects.class_names if item.defects is not None else ()
            verdict = failed_verdict(req, item.error, names, item.prepared)
        else:
            assert item.defects is not None
            verdict = apply_rules(req, item.defects, self.rules, item.prepared)
        latency = time.monotonic() - req.t_capture
        done = Inspected(verdict, item.truth, item.frames_seen, latency, req.t_wall, item.model)
        self.listeners.emit(done)
        if self.backlog.stores:
            self.backlog.add(done)
