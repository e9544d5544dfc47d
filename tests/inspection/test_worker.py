"""The shared inference worker batches images from many submitters and returns each its own result."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from inspection.core.detections import Detections
from inspection.inference.worker import BatchStats, InferenceWorker


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
        return [
            Detections(
                np.array([[float(im[0, 0, 0]), 0, 1, 1]], np.float32),
                np.ones(1, np.float32),
                np.zeros(1, np.int64),
                self.class_names,
            )
            for im in images
        ]


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


class MeetingDetector(EchoDetector):
    """Each call waits at a barrier for ``parties`` calls at once: it only returns if they overlap."""

    def __init__(self, parties: int, timeout: float) -> None:
        super().__init__(delay=0.0)
        self.barrier = threading.Barrier(parties, timeout=timeout)

    def detect(self, images):
        self.barrier.wait()
        return super().detect(images)


@pytest.mark.parametrize(("runners", "overlap"), [(2, True), (1, False)])
def test_runners_run_images_side_by_side(runners, overlap):
    det = MeetingDetector(parties=2, timeout=1.0 if overlap else 0.3)
    worker = InferenceWorker(det, "part", max_batch=1, max_wait_ms=0, runners=runners).start()
    futures = [worker.submit(img(v)) for v in (7, 9)]
    errors = [f.exception(10) for f in futures]
    worker.stop()
    if overlap:  # both calls were inside the detector at the same time, each got its own answer
        assert errors == [None, None]
        assert [float(f.result().xyxy[0, 0]) for f in futures] == [7.0, 9.0]
    else:  # one runner: the first call waits alone at the barrier and breaks it
        assert any(isinstance(e, threading.BrokenBarrierError) for e in errors)


def test_stop_ends_every_runner():
    worker = InferenceWorker(EchoDetector(0.0), "part", runners=3).start()
    assert float(worker.detect(img(3)).xyxy[0, 0]) == 3.0
    worker.stop()
    assert not any(t.is_alive() for t in worker._threads)


def test_runners_must_be_positive():
    with pytest.raises(ValueError, match="runners"):
        InferenceWorker(EchoDetector(), "part", runners=0)


def test_detect_in_order_keeps_input_order_and_reports_a_bad_item_after_the_good_ones():
    from inspection.inference.worker import detect_in_order

    class Jitter(EchoDetector):
        def detect(self, images):
            time.sleep(0.02 if int(images[0][0, 0, 0]) % 2 == 0 else 0.0)  # even images finish last
            return super().detect(images)

    worker = InferenceWorker(Jitter(0.0), "predict", max_batch=1, max_wait_ms=0, runners=3).start()
    got = [(tag, float(det.xyxy[0, 0])) for tag, _, det in detect_in_order(worker, ((v, img(v)) for v in range(12)))]
    assert got == [(v, float(v)) for v in range(12)]

    def items():
        for v in range(5):
            yield v, img(v)
        raise OSError("corrupt.jpg: cannot be decoded")

    seen = []
    with pytest.raises(OSError, match="corrupt"):
        for tag, _, _ in detect_in_order(worker, items()):
            seen.append(tag)
    worker.stop()
    assert seen == [0, 1, 2, 3, 4]
