"""One inference worker per model, shared by all cameras, batching their images.

Cameras (or the pipeline's per-camera loops) call :meth:`InferenceWorker.submit`, which
returns a ``Future``; a single thread collects requests until ``max_batch`` images are
waiting or the oldest has waited ``max_wait_ms``, runs the detector once on the whole
batch and resolves each future. When the worker knows how many submitters there are and
each waits for its answer (the part model: one frame per camera in flight), a batch
that holds one image of each goes at once instead of waiting out ``max_wait_ms``: one
camera never pays the batching wait. Batch sizes and latencies are observed through
the optional ``on_batch`` callback (the metrics hook).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from inspection.detections import Detections, Detector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchStats:
    """What one batch cost: its size, the model time, and how long its oldest item waited."""

    model: str
    size: int
    infer_s: float
    max_queue_wait_s: float


@dataclass(frozen=True, eq=False)
class _Request:
    image: np.ndarray
    future: Future[Detections]
    t_submit: float


_STOP = object()


class InferenceWorker:
    """Runs one detector on batches gathered from many submitters."""

    def __init__(self, detector: Detector, name: str, max_batch: int = 8, max_wait_ms: float = 5.0,
                 on_batch: Callable[[BatchStats], None] | None = None, max_queue: int = 256,
                 submitters: int | None = None) -> None:
        if max_batch < 1:
            raise ValueError("max_batch: must be at least 1")
        self.detector, self.name = detector, name
        self.max_batch, self.max_wait_s = max_batch, max_wait_ms / 1000.0
        self.on_batch = on_batch
        self.submitters = submitters  # at most this many requests can be waiting at once (None: unknown)
        self._queue: queue.Queue[_Request | object] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name=f"infer-{name}", daemon=True)
        self._started = False

    def start(self) -> InferenceWorker:
        if not self._started:
            self._thread.start()
            self._started = True
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._started:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._started = False

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def submit(self, image: np.ndarray) -> Future[Detections]:
        """Queue one image; the future resolves to its Detections (or the detector's error)."""
        fut: Future[Detections] = Future()
        self._queue.put(_Request(image, fut, time.monotonic()))
        return fut

    def detect(self, image: np.ndarray, timeout: float | None = 30.0) -> Detections:
        """Submit and wait: the convenience form for one caller."""
        return self.submit(image).result(timeout)

    def _gather(self, first: _Request) -> tuple[list[_Request], bool]:
        batch = [first]
        deadline = first.t_submit + self.max_wait_s
        full = min(self.max_batch, self.submitters or self.max_batch)
        while len(batch) < full:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=max(remaining, 0.0)) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            assert isinstance(item, _Request)
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                break
            assert isinstance(item, _Request)
            batch, stopping = self._gather(item)
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Request]) -> None:
        t0 = time.monotonic()
        try:
            results = self.detector.detect([r.image for r in batch])
        except Exception as exc:  # the detector's failure belongs to every caller of this batch
            log.exception("inference failed on %s", self.name)
            for r in batch:
                r.future.set_exception(exc)
            return
        t1 = time.monotonic()
        for r, det in zip(batch, results, strict=True):
            r.future.set_result(det)
        if self.on_batch is not None:
            self.on_batch(BatchStats(self.name, len(batch), t1 - t0, t0 - min(r.t_submit for r in batch)))
