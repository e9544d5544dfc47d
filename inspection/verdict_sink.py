"""Turns finished defect detections into verdicts, stores them in batches, keeps the recent ones.

Runs on one thread of its own so that neither the cameras nor the inference workers
pay for rules, JPEG encoding or database commits. Records are committed in batches
(up to ``batch`` records or every ``interval_s``), each batch in one transaction.

With an ``outbox`` (the event log), a batch is handed to it instead: it commits the
inspection rows and their ``part.inspected`` events in one transaction, so the feed
never announces a verdict the database lacks, nor the reverse.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from camera.frame import BoardTruth
from inspection.annotate import draw
from inspection.detections import Detections
from inspection.parts import InspectRequest
from inspection.reference_stage import Prepared
from inspection.rules import RulesConfig, apply_rules
from inspection.store import EvidenceStore, InspectionRecord, InspectionStore, encode_jpeg
from inspection.verdict import Verdict

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
    defects: Detections | None  # None when the defect model failed
    error: str | None
    truth: BoardTruth | None
    frames_seen: int
    prepared: Prepared | None = None  # reference models: the aligned board, its golden and differences


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str


_FLUSH = object()

# (finished inspections with their records, a callable adding the records to an open transaction)
Outbox = Callable[[list[tuple[Inspected, InspectionRecord | None]], Callable[[Any], None] | None], None]


class VerdictSink:
    """Applies the rules, stores verdicts in batches, and publishes each to the listeners."""

    def __init__(self, rules: RulesConfig, line_id: str, model: ModelInfo, store: InspectionStore | None,
                 evidence: EvidenceStore | None, listeners: list[Callable[[Any], None]], recent: int = 24,
                 batch: int = 64, interval_s: float = 0.2, outbox: Outbox | None = None,
                 outbox_flush: Callable[[float], bool] | None = None) -> None:
        self.rules, self.line_id, self.model = rules, line_id, model
        self.outbox, self.outbox_flush = outbox, outbox_flush
        self.store, self.evidence, self.listeners = store, evidence, listeners
        self.batch, self.interval_s = batch, interval_s
        self.recent: deque[tuple[Inspected, bytes]] = deque(maxlen=recent)
        self._queue: queue.Queue[PendingInspection | object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="verdicts", daemon=True)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.failed = 0

    def start(self) -> None:
        self._thread.start()

    def put(self, item: PendingInspection) -> None:
        self._queue.put(item)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is stored and published."""
        done = threading.Event()
        self._queue.put((_FLUSH, done))
        t0 = time.monotonic()
        if not done.wait(timeout):
            return False
        return self.outbox_flush is None or self.outbox_flush(max(0.1, timeout - (time.monotonic() - t0)))

    def stop(self, timeout: float = 30.0) -> None:
        self.drain(timeout)
        self._stop.set()
        self._thread.join(timeout)

    def recent_list(self) -> list[tuple[Inspected, bytes]]:
        with self._lock:
            return list(self.recent)

    def _run(self) -> None:
        pending: list[tuple[Inspected, InspectionRecord | None]] = []
        last_commit = time.monotonic()
        while not self._stop.is_set() or not self._queue.empty():
            try:
                item = self._queue.get(timeout=self.interval_s)
            except queue.Empty:
                item = None
            flush_event = None
            if isinstance(item, tuple) and item and item[0] is _FLUSH:
                flush_event = item[1]
            elif isinstance(item, PendingInspection):
                handled = self._handle(item)
                if handled is not None:
                    pending.append(handled)
            due = time.monotonic() - last_commit >= self.interval_s
            if pending and (flush_event is not None or len(pending) >= self.batch or due):
                self._commit(pending)
                pending, last_commit = [], time.monotonic()
            if flush_event is not None:
                flush_event.set()

    def _commit(self, handled: list[tuple[Inspected, InspectionRecord | None]]) -> None:
        records = [rec for _, rec in handled if rec is not None]
        if self.outbox is not None:
            self.outbox(handled, self.store.adder(records) if self.store is not None and records else None)
            return
        if self.store is None:
            return
        try:
            self.store.save_many(records)
            return
        except Exception:  # keep the line running: fall back to one record at a time
            log.exception("storing a batch of %d inspections failed; retrying one by one", len(records))
        for record in records:
            try:
                self.store.save(record)
            except Exception:
                log.exception("storing inspection %s failed", record.part_id)
                self.failed += 1

    def _handle(self, item: PendingInspection) -> tuple[Inspected, InspectionRecord | None] | None:
        req = item.request
        if item.defects is None:
            log.error("inspection of %s failed: %s", req.part_id, item.error)
            self.failed += 1
            return None
        verdict = apply_rules(req, item.defects, self.rules, item.prepared)
        done = Inspected(verdict, item.truth, item.frames_seen, time.monotonic() - req.t_capture, req.t_wall)
        with self._lock:
            self.recent.appendleft((done, encode_jpeg(draw(verdict.crop, verdict.defects), 85)))
        for listener in self.listeners:
            listener(done)
        if self.store is None or self.evidence is None:
            return (done, None) if self.outbox is not None else None
        return done, InspectionRecord.from_verdict(verdict, line_id=self.line_id, model_name=self.model.name,
                                                   model_version=self.model.version,
                                                   captured_at=datetime.fromtimestamp(req.t_wall, UTC),
                                                   evidence=self.evidence)
