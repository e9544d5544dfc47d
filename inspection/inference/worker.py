"""One inference worker per model, shared by all cameras, batching their images.

Cameras (or the pipeline's per-camera loops) call :meth:`InferenceWorker.submit`, which
returns a ``Future``; a runner thread collects requests until ``max_batch`` images are
waiting or the oldest has waited ``max_wait_ms``, runs the detector once on the whole
batch and resolves each future. With ``runners`` > 1, that many threads do this side by
side on the same detector (ONNX Runtime sessions may be run concurrently): on a CPU, two
single-threaded runs of a small model on two cores go faster than one run spread over
both (measured here: 1.5x for the part model), so each camera keeps two frames per
runner in flight and gets its results back in order (``detect_in_order`` does the same
for any stream of images). When the worker knows how many submitters there are (the part
model: one per camera), a batch of that many images goes at once instead of waiting out
``max_wait_ms``: one camera never pays the batching wait, and with one camera its frames
spread over the runners one at a time. Batch sizes and latencies are observed through
the optional ``on_batch`` callback (the metrics hook).

``swap(detector, tag)`` changes the model between batches (hot swap): a batch that started
runs to its end on the detector it started with, the next one takes the new detector, no
request is run twice or dropped. Every future the worker resolves carries the ``tag`` of the
model that answered it (``ModelFuture.model``), so each result names the model version that
made it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from inspection.core.detections import Detections, Detector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchStats:
    """What one batch cost: its size, the model time, and how long its oldest item waited."""

    model: str
    size: int
    infer_s: float
    max_queue_wait_s: float


class ModelFuture(Future[Detections]):
    """A future of one image's detections that names the model which made them (``model``: its tag)."""

    model: object = None


@dataclass(frozen=True, eq=False)
class _Request:
    image: np.ndarray
    future: ModelFuture
    t_submit: float


_STOP = object()

T = TypeVar("T")
R = TypeVar("R")


class InferenceWorker:
    """Runs one detector on batches gathered from many submitters."""

    def __init__(
        self,
        detector: Detector,
        name: str,
        max_batch: int = 8,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[BatchStats], None] | None = None,
        max_queue: int = 256,
        submitters: int | None = None,
        runners: int = 1,
        on_error: Callable[[BaseException], None] | None = None,
        tag: object = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch: must be at least 1")
        if runners < 1:
            raise ValueError("runners: must be at least 1")
        self.name = name
        self._current: tuple[Detector, object] = (detector, tag)  # read once per batch: swapped whole
        self.max_batch, self.max_wait_s = max_batch, max_wait_ms / 1000.0
        self.on_batch = on_batch
        self.on_error = on_error  # told of every failed batch (it logs and counts); None: logged here
        self.submitters = submitters  # a batch this big goes at once (None: unknown, wait up to max_wait_ms)
        self.runners = runners
        self._queue: queue.Queue[_Request | object] = queue.Queue(maxsize=max_queue)
        self._threads = [
            threading.Thread(target=self._run, name=f"infer-{name}-{i}", daemon=True) for i in range(runners)
        ]
        self._started = False

    def start(self) -> InferenceWorker:
        if not self._started:
            for t in self._threads:
                t.start()
            self._started = True
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._started:
            for _ in self._threads:
                self._queue.put(_STOP)
            deadline = time.monotonic() + timeout
            for t in self._threads:
                t.join(max(0.0, deadline - time.monotonic()))
            self._started = False

    @property
    def detector(self) -> Detector:
        """The detector that runs the next batch."""
        return self._current[0]

    @detector.setter
    def detector(self, detector: Detector) -> None:
        self._current = (detector, self._current[1])

    @property
    def tag(self) -> object:
        """The tag of the model that runs the next batch."""
        return self._current[1]

    def swap(self, detector: Detector, tag: object) -> tuple[Detector, object]:
        """Run ``detector`` from the next batch on (see the module docstring); returns the one it replaces."""
        before = self._current
        self._current = (detector, tag)
        return before

    @property
    def running(self) -> bool:
        """Started and every runner thread alive: the model is loaded and answers (for /readyz and /healthz)."""
        return self._started and all(t.is_alive() for t in self._threads)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def submit(self, image: np.ndarray) -> ModelFuture:
        """Queue one image; the future resolves to its Detections (or the detector's error)."""
        fut = ModelFuture()
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
            try:
                self._run_batch(batch)
            except Exception as exc:  # supervised: whatever failed belongs to this batch's callers, the runner goes on
                self._report(exc)
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(exc)

    def _report(self, exc: BaseException) -> None:
        if self.on_error is None:
            log.error("inference on %s failed", self.name, exc_info=exc)
            return
        try:
            self.on_error(exc)
        except Exception:
            log.exception("reporting an inference failure of %s failed", self.name)

    def _run_batch(self, batch: list[_Request]) -> None:
        t0 = time.monotonic()
        detector, tag = self._current
        for r in batch:
            r.future.model = tag
        try:
            results = detector.detect([r.image for r in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"the detector answered {len(results)} results for {len(batch)} images")
        except Exception as exc:  # the detector's failure belongs to every caller of this batch
            self._report(exc)
            for r in batch:
                r.future.set_exception(exc)
            return
        t1 = time.monotonic()
        for r, det in zip(batch, results, strict=True):
            r.future.set_result(det)
        if self.on_batch is not None:
            try:
                self.on_batch(BatchStats(self.name, len(batch), t1 - t0, t0 - min(r.t_submit for r in batch)))
            except Exception as exc:  # metrics must never stop inference
                self._report(exc)


def in_order(items: Iterable[T], start: Callable[[T], Future[R] | None], depth: int) -> Iterator[tuple[T, R | None]]:
    """Start work on each item of a stream (``start`` returns its future, or None when there is nothing
    to run), at most ``depth`` in flight, and give (item, result or None) back in input order. Reading
    the next item overlaps the work on the others; if reading fails, the results of the items before
    it come out first, then the error."""
    pending: deque[tuple[T, Future[R] | None]] = deque()

    def oldest() -> tuple[T, R | None]:
        item, fut = pending.popleft()
        return item, None if fut is None else fut.result()

    try:
        for item in items:
            pending.append((item, start(item)))
            if len(pending) >= depth:
                yield oldest()
    except Exception:  # reading the next item failed: the answers before it come out first
        while pending:
            yield oldest()
        raise
    while pending:
        yield oldest()


def detect_in_order(
    worker: InferenceWorker, items: Iterable[tuple[T, np.ndarray]], depth: int | None = None
) -> Iterator[tuple[T, np.ndarray, Detections]]:
    """Detect over a stream of (tag, image), ``depth`` images in flight (default: two per runner
    and batch), answers in input order (see :func:`in_order`)."""
    for (tag, image), det in in_order(
        items, lambda item: worker.submit(item[1]), depth or 2 * worker.runners * worker.max_batch
    ):
        assert det is not None
        yield tag, image, det
