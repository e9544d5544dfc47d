"""The shared inference worker batches images from many submitters and returns each its own result."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from inspection.detections import Detections
from inspection.worker import BatchStats, InferenceWorker


class EchoDetector:
    """Returns one box whose x1 is the image's fill value; records batch sizes; takes a while."""

    class_names = ("a",)
    imgsz = (8, 8)
    provider = "test"

    def __init__(self, delay: float = 0.01, fail: bool = False) -> None:
        self.batches: list[int] = []
        self.delay, self.fail = delay, fail

    def detect(self, images):
        self.batches.append(len(images))
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("model exploded")
        return [Detections(np.array([[float(im[0, 0, 0]), 0, 1, 1]], np.float32), np.ones(1, np.float32),
                           np.zeros(1, np.int64), self.class_names) for im in images]


def img(v: int) -> np.ndarray:
    return np.full((4, 4, 3), v, np.uint8)


def test_concurrent_cameras_are_batched_and_answers_go_to_their_caller():
    det = EchoDetector(delay=0.02)
    stats: list[BatchStats] = []
    worker = InferenceWorker(det, "part", max_batch=4, max_wait_ms=20, on_batch=stats.append).start()
    results: dict[int, float] = {}

    def camera(base: int) -> None:
        for i in range(10):
            v = base + i
            results[v] = float(worker.detect(img(v)).xyxy[0, 0])

    threads = [threading.Thread(target=camera, args=(b,)) for b in (0, 50, 100, 150)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    worker.stop()
    assert results == {float(k): float(k) for k in results} and len(results) == 40
    assert max(det.batches) > 1 and max(det.batches) <= 4
    assert sum(det.batches) == 40 == sum(s.size for s in stats)


def test_max_wait_bounds_the_latency_of_a_lone_request():
    det = EchoDetector(delay=0.0)
    worker = InferenceWorker(det, "part", max_batch=8, max_wait_ms=5).start()
    t0 = time.monotonic()
    worker.detect(img(1))
    assert time.monotonic() - t0 < 1.0
    worker.stop()
    assert det.batches == [1]


def test_detector_failure_reaches_every_caller_of_the_batch():
    worker = InferenceWorker(EchoDetector(fail=True), "defect", max_batch=4, max_wait_ms=50).start()
    futures = [worker.submit(img(i)) for i in range(3)]
    for f in futures:
        with pytest.raises(RuntimeError, match="model exploded"):
            f.result(5)
    # the worker survives and keeps serving
    worker.detector = EchoDetector()
    assert worker.detect(img(7)).xyxy[0, 0] == 7
    worker.stop()
