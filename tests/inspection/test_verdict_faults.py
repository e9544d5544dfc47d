"""The verdict thread and the stage threads in front of it survive faults (issue 10, items 3 and 8).

Each test injects one fault where it happens in production (a listener that raises, a store
that refuses, a model that fails, a part model that fails on one frame) and checks that the
thread goes on, the fault is counted and nothing is lost without being counted.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from camera.simulated import LineMotion, SimulatedLine, replay_sequence
from camera.synth import LineStyle
from inspection.core.classes import DEEPPCB_CLASSES
from inspection.core.detections import Detections
from inspection.core.outcome import Outcome
from inspection.inference.worker import InferenceWorker
from inspection.ml.datasets.boards import board_pool
from inspection.pipeline.engine import Engine, EngineConfig
from inspection.pipeline.events import Inspected
from inspection.pipeline.parts import InspectRequest, PartsConfig
from inspection.pipeline.recording import ModelInfo, StoreRecorder
from inspection.pipeline.rules import RulesConfig
from inspection.pipeline.trigger import LineTriggerConfig
from inspection.pipeline.verdict_backlog import StoreLimits
from inspection.pipeline.verdict_sink import PendingInspection, SinkLimits, VerdictSink
from inspection.store import EvidenceStore, InspectionStore, StoreUnavailableError, open_database
from inspection.store.errors import StoreError
from tests.conftest import wait_until
from tests.faults import BlankDefects, GatedSource, OracleDetector

NAMES = DEEPPCB_CLASSES
FAST = StoreLimits(interval_s=0.02, retry_s=(0.01, 0.05))


def request(i: int) -> InspectRequest:
    crop = np.full((48, 64, 3), 40 + i, np.uint8)
    return InspectRequest(
        f"cam1-{i}-{i}",
        "cam1",
        i,
        crop,
        np.array([10, 10, 74, 58], np.float32),
        np.array([10, 10, 74, 58], np.int64),
        i,
        time.monotonic(),
        time.time(),
    )


def pending(i: int, error: str | None = None) -> PendingInspection:
    return PendingInspection(request(i), Detections.empty(NAMES), error, None, 3)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[InspectionStore]:
    db = open_database(f"sqlite:///{tmp_path / 'v.db'}")
    yield InspectionStore(db, EvidenceStore(tmp_path / "evidence"))
    db.dispose()


def sink_for(store: InspectionStore | None, listeners: list[Any] | None = None, **limits: Any) -> VerdictSink:
    sink = VerdictSink(
        RulesConfig(),
        "line-1",
        ModelInfo("m", "1"),
        StoreRecorder(store) if store else None,
        store.evidence if store else None,
        limits=SinkLimits(**{"store": FAST, **limits}),
    )
    for listener in listeners or []:
        sink.listeners.add(listener)
    return sink


def stored_parts(store: InspectionStore) -> dict[str, Any]:
    return {item.part_id: item for item in store.iterate()}


def test_a_failing_listener_never_stops_the_verdict_thread(store: InspectionStore):
    got: list[str] = []

    def broken(event: Any) -> None:
        raise RuntimeError("listener bug")

    sink = sink_for(store, [broken, lambda e: got.append(e.verdict.part_id)])
    sink.start()
    for i in range(3):
        sink.put(pending(i))
    assert sink.drain(10)
    sink.stop()
    assert got == ["cam1-0-0", "cam1-1-1", "cam1-2-2"]  # the listener after the broken one still hears all
    assert len(stored_parts(store)) == 3
    text = sink.telemetry.render().decode()
    assert 'twinspect_stage_errors_total{stage="verdict listener"} 3.0' in text


def test_a_board_the_defect_model_failed_on_is_stored_uncertain_with_the_reason(store: InspectionStore):
    sink = sink_for(store)
    sink.start()
    sink.put(pending(1, error="RuntimeError: CUDA out of memory"))
    assert sink.drain(10)
    sink.stop()
    item = stored_parts(store)["cam1-1-1"]
    assert item.outcome is Outcome.UNCERTAIN
    assert item.reasons == ("uncertain: the defect model failed: RuntimeError: CUDA out of memory",)


def test_a_reference_board_the_model_failed_on_keeps_its_registered_board_as_evidence(store: InspectionStore):
    """QA's pair view and retrain read the evidence in golden pixels: it must be the aligned board, not the crop."""
    from inspection.ml.images import read_image
    from inspection.pipeline.reference_stage import Prepared
    from inspection.pipeline.verdict import ReferenceInfo

    aligned = np.full((40, 56), 200, np.uint8)  # the board registered to a 56x40 golden (the crop is 64x48)
    info = ReferenceInfo("board-a", "ab" * 32, 0.97, True)
    prepared = Prepared(np.zeros((40, 56, 3), np.uint8), aligned, info, None)
    sink = sink_for(store)
    sink.start()
    sink.put(PendingInspection(request(2), Detections.empty(NAMES), "RuntimeError: boom", None, 3, prepared))
    assert sink.drain(10)
    sink.stop()
    item = stored_parts(store)["cam1-2-2"]
    assert item.outcome is Outcome.UNCERTAIN and item.golden_sha256 == "ab" * 32
    assert (item.crop_width, item.crop_height) == (56, 40)
    evidence = read_image(store.evidence.path(item.evidence_sha256))
    assert evidence.shape[:2] == (40, 56) and abs(float(evidence.mean()) - 200) < 3


class FlakyStore(InspectionStore):
    """Refuses every write while ``failing`` (as a full disk would), counts the attempts."""

    def __init__(self, base: InspectionStore) -> None:
        super().__init__(base.engine, base.evidence)
        self.failing, self.attempts = True, 0

    def save_many(self, records: Any) -> None:
        self.attempts += 1
        if self.failing:
            raise StoreUnavailableError("database: no space left (injected)")
        super().save_many(records)


def test_a_failing_store_is_retried_with_backoff_and_shows_the_fault(store: InspectionStore):
    flaky = FlakyStore(store)
    sink = sink_for(flaky)
    sink.start()
    for i in range(5):
        sink.put(pending(i))
    assert wait_until(lambda: flaky.attempts >= 3, timeout=10)
    assert [f.component for f in sink.health.faults()] == ["database"]
    assert sink.storage()["state"] == "failing" and sink.storage()["pending"] == 5
    assert not sink.drain(0.3)  # nothing stored yet: a drain says so instead of pretending
    flaky.failing = False
    assert sink.drain(10)
    sink.stop()
    assert len(stored_parts(store)) == 5 and not sink.health.faults()


def test_stop_while_storage_fails_gives_up_after_the_grace_and_counts_every_board(
    store: InspectionStore, caplog: pytest.LogCaptureFixture
):
    flaky = FlakyStore(store)
    sink = sink_for(flaky, stop_grace_s=0.3)
    sink.start()
    for i in range(4):
        sink.put(pending(i))
    assert wait_until(lambda: flaky.attempts >= 1, timeout=10)
    t0 = time.monotonic()
    with caplog.at_level(logging.ERROR):
        sink.stop(timeout=30.0)
    took = time.monotonic() - t0
    assert took < 5.0  # the grace, not the 30 s timeout
    assert sink.backlog.lost == 4 and sink.storage()["pending"] == 0
    assert "4 verdicts not confirmed stored" in caplog.text and "cam1-3-3" in caplog.text


def test_a_record_storage_refuses_for_good_is_isolated_and_counted(store: InspectionStore):
    sink = sink_for(store)
    sink.start()
    sink.put(pending(1))
    assert sink.drain(10)
    sink.put(pending(2))
    sink.put(pending(1))  # the same part again: the store refuses it (unique part id), not its batch
    sink.put(pending(3))
    assert sink.drain(10)
    sink.stop()
    assert sorted(stored_parts(store)) == ["cam1-1-1", "cam1-2-2", "cam1-3-3"]
    assert sink.backlog.refused == 1


def test_a_full_verdict_queue_drops_after_a_bounded_wait_and_counts(store: InspectionStore):
    sink = sink_for(store, max_queue=1, put_timeout_s=0.05)  # not started: nothing takes from the queue
    sink.put(pending(1))
    t0 = time.monotonic()
    sink.put(pending(2))
    assert time.monotonic() - t0 < 2.0
    assert sink.failed == 1
    assert 'twinspect_queue_dropped_total{queue="verdicts"} 1.0' in sink.telemetry.render().decode()


def test_stop_never_waits_on_a_dead_verdict_thread(store: InspectionStore, monkeypatch: pytest.MonkeyPatch):
    sink = sink_for(store)
    monkeypatch.setattr(sink, "_step", lambda wait: -1.0)  # the thread ends at once, as a crashed one would
    sink.start()
    sink._thread.join(5)
    sink.put(pending(1))
    t0 = time.monotonic()
    assert not sink.drain(30.0)
    sink.stop(30.0)
    assert time.monotonic() - t0 < 2.0


def test_evidence_the_disk_refuses_is_retried_then_written(store: InspectionStore, monkeypatch: pytest.MonkeyPatch):
    real_replace = os.replace
    refusals = {"left": 3}

    def replace(src: Any, dst: Any) -> None:  # the rename of an evidence file fails as on a full disk, 3 times
        if refusals["left"] and str(src).endswith(".part"):
            refusals["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    sink = sink_for(store)
    sink.start()
    sink.put(pending(7))
    assert sink.drain(10)
    sink.stop()
    item = stored_parts(store)["cam1-7-7"]
    assert store.evidence.exists(item.evidence_sha256) and refusals["left"] == 0
    assert 'twinspect_store_retries_total{what="evidence"} 3.0' in sink.telemetry.render().decode()


# -- the stage threads in front of the verdict thread ---------------------------------------------


class FailsOnFrame(OracleDetector):
    """The part model fails on every 5th batch (one frame's worth)."""

    def __init__(self, source: GatedSource) -> None:
        super().__init__(source)
        self.calls = 0

    def detect(self, images: list[Any]) -> list[Detections]:
        self.calls += 1
        if self.calls % 5 == 0:
            raise RuntimeError("part model hiccup")
        return super().detect(images)


def test_a_camera_loop_goes_on_after_the_part_model_fails_on_a_frame(deeppcb_factory: Any):
    pool = board_pool(deeppcb_factory(boards=3))
    style = LineStyle(width=320, height=192, board_px=140, seam_every_px=100)
    inner = SimulatedLine(
        "cam1",
        pool,
        style=style,
        motion=LineMotion(fps=30, speed_px_s=900),
        realtime=False,
        sequence=replay_sequence(pool, 0.5, seed=0),
    )
    gate = GatedSource(inner)
    gate.release(1 << 30)
    trigger = LineTriggerConfig(start=(160.0, 0.0), end=(160.0, 192.0), direction="right_to_left")
    part = FailsOnFrame(gate)
    engine = Engine(
        EngineConfig(parts=PartsConfig(trigger=trigger), max_batch=1),
        [gate],
        part,  # type: ignore[list-item]
        BlankDefects(NAMES),
        ModelInfo("m", "1"),
    )
    verdicts: list[Inspected] = []
    engine.add_listener(lambda e: verdicts.append(e) if isinstance(e, Inspected) else None)
    engine.start()
    assert engine.wait(60)
    engine.stop()
    frames = inner.stats().frames_in
    assert engine.loops[0].frames == frames - part.calls // 5 > 20  # every frame but the failed ones tracked
    assert engine.loops[0].thread.is_alive() is False and verdicts  # it ran to the end of the line
    text = engine.telemetry.render().decode()
    assert f'twinspect_stage_errors_total{{stage="camera cam1"}} {float(part.calls // 5)}' in text


def test_an_inference_runner_survives_a_failing_batch_hook():
    calls = {"n": 0}

    def hook(stats: Any) -> None:
        calls["n"] += 1
        raise ValueError("metrics bug")

    errors: list[BaseException] = []
    worker = InferenceWorker(
        BlankDefects(NAMES),
        "defect",
        1,
        0.0,
        on_batch=hook,  # type: ignore[arg-type]
        on_error=errors.append,
    ).start()
    for _ in range(3):
        assert len(worker.detect(np.zeros((8, 8, 3), np.uint8), timeout=5)) == 0
    worker.stop()
    assert calls["n"] == 3 and len(errors) == 3


def test_a_store_error_class_tells_transient_from_permanent():
    from inspection.store.errors import EvidenceFullError, StorageFullError

    assert issubclass(EvidenceFullError, StorageFullError) and issubclass(StorageFullError, StoreUnavailableError)
    assert not issubclass(StoreError, StoreUnavailableError)
