"""Frames in flight at several part-model runners still reach the tracker in order, each with its own boards."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

from camera.simulated import LineMotion, SimulatedLine, replay_sequence
from camera.synth import LineStyle
from inspection.core.classes import DEEPPCB_CLASSES
from inspection.core.detections import Detections
from inspection.inference.models import concurrency
from inspection.ml.datasets.boards import board_pool
from inspection.pipeline.engine import Engine, EngineConfig
from inspection.pipeline.recording import ModelInfo


def fingerprint(image: np.ndarray) -> float:
    return float(int(image.astype(np.int64).sum()) % 1_000_003)


class JitteryDetector:
    """Answers after a random delay (so later frames often finish first), with the image's fingerprint as x1."""

    imgsz = (192, 320)
    provider = "test"

    def __init__(self, names: tuple[str, ...]) -> None:
        self.class_names = names
        self.rng = random.Random(0)
        self.lock = threading.Lock()
        self.active = self.max_active = 0

    def detect(self, images):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            delay = self.rng.uniform(0.0, 0.02)
        time.sleep(delay)
        with self.lock:
            self.active -= 1
        return [
            Detections(
                np.array([[fingerprint(im), 0, 1, 1]], np.float32),
                np.full(1, 0.01, np.float32),
                np.zeros(1, np.int64),
                self.class_names,
            )
            for im in images
        ]


def test_frames_in_flight_are_tracked_in_order_with_their_own_results(deeppcb_factory):
    pool = board_pool(deeppcb_factory(boards=3))
    style = LineStyle(width=320, height=192, board_px=140, seam_every_px=100)
    source = SimulatedLine(
        "cam1",
        pool,
        style=style,
        motion=LineMotion(fps=30, speed_px_s=900),
        realtime=False,
        sequence=replay_sequence(pool, 0.5, seed=0),
    )
    part = JitteryDetector(("board",))
    engine = Engine(EngineConfig(part_runners=3), [source], part, JitteryDetector(DEEPPCB_CLASSES), ModelInfo("m", "1"))
    seen: list[tuple[int, bool]] = []
    loop = engine.loops[0]
    update = loop.parts.update

    def checked_update(boards, frame):
        seen.append((frame.seq, float(boards.xyxy[0, 0]) == fingerprint(frame.image)))
        return update(Detections.empty(("board",)), frame)

    loop.parts.update = checked_update  # type: ignore[method-assign]
    engine.start()
    assert engine.wait(60)
    engine.stop()
    seqs = [s for s, _ in seen]
    assert len(seqs) == source.stats().frames_in > 30
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # in order, none twice
    assert all(ok for _, ok in seen)  # every frame got the boards found in its own image
    assert part.max_active > 1  # frames really were at the model side by side


@pytest.mark.parametrize(
    ("providers", "backend", "runners", "threads", "cores", "expected"),
    [
        (["CPUExecutionProvider"], "onnx", 0, 0, 2, (2, 1)),  # one single-threaded runner per core
        (["CPUExecutionProvider"], "onnx", 0, 0, 16, (4, 4)),  # at most 4 runners, the cores shared out
        (["CPUExecutionProvider"], "onnx", 1, 0, 2, (1, 2)),  # one runner gets every core
        (["CPUExecutionProvider"], "onnx", 3, 2, 2, (3, 2)),  # what is set is kept
        (["CPUExecutionProvider"], "torch", 0, 0, 8, (1, 0)),  # PyTorch: one runner, its own threads
    ],
)
def test_concurrency_plan(providers, backend, runners, threads, cores, expected):
    assert concurrency(providers, backend, runners, threads, cores=cores) == expected
