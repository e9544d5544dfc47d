"""A slow model never blocks capture: the camera buffer drops the oldest frames and counts them.

No fixed sleeps with expectations about what the threads did meanwhile: each test waits for the
state it checks (a busy machine only makes it wait longer), and bounds that depend on time are
taken from the time that really passed.
"""

from __future__ import annotations

import time

from camera.simulated import LineMotion, SimulatedLine
from camera.synth import LineStyle
from inspection.core.classes import DEEPPCB_CLASSES
from inspection.core.detections import Detections
from inspection.ml.datasets.boards import board_pool
from inspection.pipeline.engine import Engine, EngineConfig
from inspection.pipeline.recording import ModelInfo
from tests.conftest import wait_until


class SlowDetector:
    imgsz = (320, 320)
    provider = "test"

    def __init__(self, names: tuple[str, ...], delay: float) -> None:
        self.class_names, self.delay, self.calls = names, delay, 0

    def detect(self, images):
        self.calls += len(images)
        time.sleep(self.delay)
        return [Detections.empty(self.class_names) for _ in images]


def test_slow_part_model_makes_the_buffer_drop_without_blocking_capture(deeppcb_factory):
    pool = board_pool(deeppcb_factory(boards=4))
    style = LineStyle(width=320, height=192, board_px=140, seam_every_px=100)
    source = SimulatedLine(
        "cam1", pool, style=style, motion=LineMotion(fps=40, speed_px_s=400), realtime=True, buffer_size=3
    )
    part = SlowDetector(("board",), delay=0.25)
    engine = Engine(EngineConfig(), [source], part, SlowDetector(DEEPPCB_CLASSES, 0.0), ModelInfo("m", "1"))
    t0 = time.monotonic()
    engine.start()
    assert wait_until(lambda: source.stats().frames_in >= 50, 60), source.stats()
    stats = source.stats()
    calls = part.calls  # read after the camera's counts: what the model took by then is at most this
    elapsed = time.monotonic() - t0
    engine.stop()
    # capture kept going while the model handled at most one frame per 0.25 s of the time that passed
    assert calls <= elapsed / 0.25 + 1
    # each frame was taken (at most the model's calls plus the 2 in flight), dropped, or waits in the buffer of 3
    assert stats.dropped >= stats.frames_in - calls - 2 - 3
    assert stats.dropped > 0
    assert engine.loops[0].frames == part.calls


def test_engine_reports_camera_metrics(deeppcb_factory):
    pool = board_pool(deeppcb_factory(boards=4))
    style = LineStyle(width=320, height=192, board_px=140, seam_every_px=100)
    source = SimulatedLine("cam9", pool, style=style, motion=LineMotion(fps=30), realtime=True)
    engine = Engine(
        EngineConfig(), [source], SlowDetector(("board",), 0.0), SlowDetector(DEEPPCB_CLASSES, 0.0), ModelInfo("m", "1")
    )
    engine.start()

    def frames(text: str) -> float:
        lines = [ln for ln in text.splitlines() if ln.startswith("twinspect_camera_frames_total")]
        return float(lines[0].split()[-1]) if lines else 0.0

    def scraped() -> bool:
        text = engine.telemetry.render().decode()
        return frames(text) > 5 and 'twinspect_batch_size_count{model="part"}' in text

    assert wait_until(scraped, 60)
    text = engine.telemetry.render().decode()
    engine.stop()
    assert 'twinspect_camera_frames_total{camera="cam9"}' in text
    assert 'twinspect_camera_state{camera="cam9",state="running"} 1.0' in text
    assert 'twinspect_batch_size_count{model="part"}' in text and frames(text) > 5


def test_a_camera_that_does_not_answer_never_stops_the_others(deeppcb_factory):
    from camera.opencv_source import OpenCVSource
    from camera.source import ReconnectPolicy

    pool = board_pool(deeppcb_factory(boards=4))
    style = LineStyle(width=320, height=192, board_px=140, seam_every_px=100)
    good = SimulatedLine("good", pool, style=style, motion=LineMotion(fps=30), realtime=True)
    dead = OpenCVSource(
        "dead",
        "http://127.0.0.1:9/nothing-listens-here",
        open_timeout_s=0.5,
        read_timeout_s=0.5,
        policy=ReconnectPolicy(initial_delay_s=0.1, max_delay_s=0.3, stall_timeout_s=1.0),
    )
    part = SlowDetector(("board",), 0.0)
    engine = Engine(EngineConfig(), [good, dead], part, SlowDetector(DEEPPCB_CLASSES, 0.0), ModelInfo("m", "1"))
    engine.start()
    assert wait_until(lambda: engine.loops[0].frames > 20 and dead.stats().reconnects >= 2, 60)
    good_stats, dead_stats = good.stats(), dead.stats()
    frames_good = engine.loops[0].frames
    engine.stop()
    assert frames_good > 20 and good_stats.online
    assert not dead_stats.online and dead_stats.state.value == "reconnecting"
    assert dead_stats.reconnects >= 2 and dead_stats.last_error
