"""The frame buffer: drop oldest when full, count every drop, never block the producer."""

from __future__ import annotations

import threading
import time

import numpy as np

from camera.buffer import FrameBuffer
from camera.frame import Frame

IMAGE = np.zeros((2, 2, 3), np.uint8)


def frame(seq: int) -> Frame:
    return Frame(IMAGE, "cam", seq, float(seq), float(seq))


def test_full_buffer_drops_the_oldest_and_counts_each_drop():
    buf = FrameBuffer(3)
    dropped = [buf.put(frame(i)) for i in range(5)]
    assert dropped == [False, False, False, True, True]
    assert (buf.frames_in, buf.dropped, buf.depth) == (5, 2, 3)
    assert [buf.get(0).seq for _ in range(3)] == [2, 3, 4]  # type: ignore[union-attr]
    assert buf.get(0) is None
    assert buf.depth == 0


def test_get_times_out_and_close_wakes_a_waiting_consumer():
    buf = FrameBuffer(2)
    t = time.monotonic()
    assert buf.get(0.1) is None
    assert 0.09 <= time.monotonic() - t < 1.0
    got: list[Frame | None] = []
    consumer = threading.Thread(target=lambda: got.append(buf.get(10)))
    consumer.start()
    time.sleep(0.05)
    t = time.monotonic()
    buf.close()
    consumer.join(2)
    assert not consumer.is_alive() and got == [None]
    assert time.monotonic() - t < 1.0


def test_closed_buffer_still_hands_out_what_it_holds():
    buf = FrameBuffer(4)
    buf.put(frame(0))
    buf.close()
    assert buf.get(5).seq == 0  # type: ignore[union-attr]
    t = time.monotonic()
    assert buf.get(5) is None
    assert time.monotonic() - t < 0.5


def test_producer_never_blocks_behind_a_slow_consumer():
    buf = FrameBuffer(4)
    consumed: list[int] = []
    stop = threading.Event()

    def slow_consumer() -> None:
        while not stop.is_set():
            f = buf.get(0.05)
            if f is not None:
                consumed.append(f.seq)
                time.sleep(0.02)  # a consumer far slower than the producer

    consumer = threading.Thread(target=slow_consumer)
    consumer.start()
    try:
        t = time.monotonic()
        worst = 0.0
        for i in range(3000):
            t1 = time.perf_counter()
            buf.put(frame(i))
            worst = max(worst, time.perf_counter() - t1)
        produced_in = time.monotonic() - t
    finally:
        stop.set()
        consumer.join(2)
    assert not consumer.is_alive()
    # 3000 frames at 20 ms each would take a minute to consume; the producer is done in a blink
    assert produced_in < 2.0
    assert worst < 0.5
    assert len(consumed) < 300
    assert buf.frames_in == 3000
    assert buf.frames_in == len(consumed) + buf.dropped + buf.depth
    assert buf.dropped > 2500
    assert consumed == sorted(consumed)  # order kept, only the oldest dropped
    rest = [buf.get(0) for _ in range(buf.depth)]
    assert [f.seq for f in rest if f is not None][-1] == 2999  # the newest frame is never lost


def test_wait_for_space_lets_a_producer_pace_itself():
    buf = FrameBuffer(1)
    buf.put(frame(0))
    assert buf.wait_for_space(0.05) is False
    threading.Timer(0.05, lambda: buf.get(0)).start()
    assert buf.wait_for_space(2.0) is True
    assert buf.dropped == 0
