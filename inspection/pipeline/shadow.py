"""A shadow model beside the defect model: it sees the boards the line sees, off the critical path.

The engine offers each board's model input (the crop, or the reference planes) to the
``ShadowTap`` right after handing it to the defect model. ``ShadowRunner.offer`` never waits:
a board goes into a small bounded queue, or is dropped and counted when the queue is full
(under load the shadow's share of the work is what gives). One thread, at a lower CPU
priority than the serving threads, runs the shadow detector on batches from that queue,
applies the same rules, and writes one row per board (part id, the shadow's verdict and
boxes) through ``write``, in batches, apart from the stored inspections. ``sample`` runs it
on a share of the boards (every k-th).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from inspection.core.detections import Detector
from inspection.pipeline.events import ModelInfo
from inspection.pipeline.parts import InspectRequest
from inspection.pipeline.reference_stage import Prepared
from inspection.pipeline.rules import RulesConfig, apply_rules

log = logging.getLogger(__name__)

_STOP = object()
Rows = list[dict[str, Any]]


class ShadowTap(Protocol):
    """What the engine calls for each board it hands to the defect model."""

    def offer(self, request: InspectRequest, image: np.ndarray, prepared: Prepared | None) -> None:
        """Take the board if there is room (never blocks)."""


@dataclass(frozen=True)
class ShadowConfig:
    sample: float = 1.0  # share of boards the shadow sees (1: every board; 0.25: every 4th)
    max_queue: int = 16  # boards waiting for the shadow; beyond: dropped, counted
    max_batch: int = 4
    flush_rows: int = 32  # rows written at once (or after flush_s)
    flush_s: float = 1.0
    nice: int = 10  # added niceness of the shadow thread (Linux: per thread)


class ShadowRunner:
    """See the module docstring."""

    def __init__(
        self,
        detector: Detector,
        model: ModelInfo,
        rules: RulesConfig,
        line_id: str,
        write: Callable[[Rows], None],
        config: ShadowConfig | None = None,
    ) -> None:
        self.detector, self.model, self.rules, self.line_id = detector, model, rules, line_id
        self.write, self.config = write, config or ShadowConfig()
        self._every = max(1, round(1.0 / self.config.sample)) if self.config.sample > 0 else 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.config.max_queue)
        self._thread = threading.Thread(target=self._run, name=f"shadow-{model.name}", daemon=True)
        self._rows: Rows = []
        self._last_flush = time.monotonic()
        self.offered = self.skipped = self.dropped = self.run = self.failed = self.stored = 0

    def start(self) -> ShadowRunner:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued (up to ``timeout``), write the rows, end the thread."""
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(_STOP, timeout=timeout)
            self._thread.join(timeout)

    def figures(self) -> dict[str, Any]:
        return {
            "model": f"{self.model.name}:{self.model.version}",
            "offered": self.offered,
            "skipped": self.skipped,
            "dropped": self.dropped,
            "run": self.run,
            "failed": self.failed,
            "stored": self.stored,
            "queue": self._queue.qsize(),
        }

    def offer(self, request: InspectRequest, image: np.ndarray, prepared: Prepared | None) -> None:
        self.offered += 1
        if not self._every or self.offered % self._every:
            self.skipped += 1
            return
        try:
            self._queue.put_nowait((request, image, prepared))
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # lower priority than the serving threads
            tid = threading.get_native_id()  # Linux: a thread's own niceness, relative to the process's
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + self.config.nice))
        while True:
            try:
                item = self._queue.get(timeout=self.config.flush_s)
            except queue.Empty:
                self._flush(force=True)
                continue
            if item is _STOP:
                break
            batch = [item]
            while len(batch) < self.config.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    self._queue.put(_STOP)
                    break
                batch.append(more)
            self._inspect(batch)
            self._flush()
        self._flush(force=True)

    def _inspect(self, batch: list[tuple[InspectRequest, np.ndarray, Prepared | None]]) -> None:
        try:
            found = self.detector.detect([image for _, image, _ in batch])
        except Exception:
            log.exception("the shadow model %s failed on %d boards", self.model.name, len(batch))
            self.failed += len(batch)
            return
        for (req, _, prepared), det in zip(batch, found, strict=True):
            verdict = apply_rules(req, det, self.rules, prepared)
            self._rows.append(
                {
                    "line_id": self.line_id,
                    "part_id": req.part_id,
                    "name": self.model.name,
                    "version": int(self.model.version),
                    "outcome": verdict.outcome.value,
                    "boxes": det.boxes_json(),
                }
            )
        self.run += len(batch)

    def _flush(self, force: bool = False) -> None:
        due = len(self._rows) >= self.config.flush_rows or time.monotonic() - self._last_flush >= self.config.flush_s
        if not self._rows or not (force or due):
            return
        rows, self._rows = self._rows, []
        self._last_flush = time.monotonic()
        try:
            self.write(rows)
            self.stored += len(rows)
        except Exception:
            log.exception("storing %d shadow verdicts failed", len(rows))
            self.failed += len(rows)
