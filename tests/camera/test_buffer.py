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
    assert time.monotonic() - t >= 0.09  # waited its timeout (a lower bound: no machine is too fast for it)
    got: list[Frame | None] = []
    consumer = threading.Thread(target=lambda: got.append(buf.get(None)), daemon=True)  # would wait forever
    consumer.start()
    buf.close()
    consumer.join(30)
    assert not consumer.is_alive() and got == [None]  # only close can have ended a wait without a timeout


def test_closed_buffer_still_hands_out_what_it_holds():
    buf = FrameBuffer(4)
    buf.put(frame(0))
    buf.close()
    assert buf.get(None).seq == 0  # type: ignore[union-attr]
    got: list[Frame | None] = []
    consumer = threading.Thread(target=lambda: got.append(buf.get(None)), daemon=True)
    consumer.start()
    consumer.join(30)
    assert not consumer.is_alive() and got == [None]  # closed and empty: no wait at all, even without a timeout


def test_producer_never_blocks_behind_a_slow_consumer():
    buf = FrameBuffer(4)
    consumed: list[int] = []
    took_one = threading.Event()
    release = threading.Event()

    def held_consumer() -> None:  # takes one frame, then is held until the producer is done
        f = buf.get(None)
        assert f is not None
        consumed.append(f.seq)
        took_one.set()
        release.wait()
        while (f := buf.get(0)) is not None:
            consumed.append(f.seq)

    def produce() -> None:
        for i in range(1, 3000):
            buf.put(frame(i))

    consumer = threading.Thread(target=held_consumer, daemon=True)
    consumer.start()
    buf.put(frame(0))
    assert took_one.wait(30)
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    producer.join(30)  # the consumer is held for as long as this takes: the producer must finish without it
    finished_while_held = not producer.is_alive() and not release.is_set()
    release.set()
    consumer.join(30)
    assert finished_while_held, "put waited on a consumer that was not reading"
    assert not consumer.is_alive()
    assert buf.frames_in == 3000
    assert buf.dropped == 3000 - 1 - 4  # one consumed before the flood, the buffer keeps 4, the rest dropped
    assert consumed == [0, 2996, 2997, 2998, 2999]  # order kept, only the oldest dropped, the newest never lost
    assert buf.depth == 0


def test_wait_for_space_lets_a_producer_pace_itself():
    buf = FrameBuffer(1)
    buf.put(frame(0))
    assert buf.wait_for_space(0.05) is False
    threading.Timer(0.05, lambda: buf.get(0)).start()
    assert buf.wait_for_space(30.0) is True
    assert buf.dropped == 0
