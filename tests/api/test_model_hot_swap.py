"""Hot swap in a running engine over the simulated line: every board inspected once, each verdict names its model."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from api.cli.line import _simulated_line
from api.model_runtime import build_desk, served_settings
from api.runtime import build_engine
from api.settings import Settings
from camera.simulated import replay_sequence
from inspection.ml.datasets.boards import board_pool
from inspection.pipeline.engine import Engine
from inspection.pipeline.events import EngineEvent, Inspected
from inspection.store import ModelStates, Version, open_database
from tests.api.test_model_delivery import add_version
from tests.conftest import real_board_subset

pytestmark = pytest.mark.usefixtures("plain_model")  # v1's fp32 ONNX file, exported once

V1, V2 = Version("defect-yolov8n", 1), Version("defect-yolov8n", 2)


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_board_subset(tmp_path_factory.mktemp("boards"), 6, offset=40)


class HeldPartModel:
    """The part model, held once the swap is asked for until it is done: boards keep coming after the swap
    however fast the machine (frames wait at the part model; the boards already at the defect model finish)."""

    def __init__(self, inner, asked: threading.Event, done: threading.Event) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.asked, self.done = inner, asked, done
        self.class_names, self.imgsz, self.provider = inner.class_names, inner.imgsz, inner.provider

    def detect(self, images):  # type: ignore[no-untyped-def]
        if self.asked.is_set():
            self.done.wait(60)
        return self.inner.detect(images)


def run_to_the_end(engine: Engine, listen: Callable[[EngineEvent], None]) -> None:
    """Run the line over all its boards with ``listen`` on its events, then stop it."""
    engine.add_listener(listen)
    engine.start()
    try:
        assert engine.wait(300)
    finally:
        engine.stop()


def line_settings(tmp_path: Path, boards: Path, registry: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data")
    defect = settings.models.defect.model_copy(update={"weights": registry / "defect-yolov8n-v1", "runners": 1})
    settings = settings.model_copy(update={"models": settings.models.model_copy(update={"defect": defect})})
    return _simulated_line(settings, boards, 1, realtime=False, fps=10.0, defect_rate=0.5, replay=True, speed=450.0)


def test_swap_between_batches_under_load_loses_no_board_and_each_verdict_names_its_model(tmp_path, boards):
    registry = tmp_path / "weights"
    add_version(registry, 1)
    add_version(registry, 2)
    settings = line_settings(tmp_path, boards, registry)
    db = open_database(f"sqlite:///{tmp_path / 'states.db'}")
    states = ModelStates(db)
    engine = build_engine(served_settings(settings, states), store=False)
    desk = build_desk(settings, engine, None, states)
    assert desk.active() == V1
    desk.start_shadow(V2, "ml", "beside v1 until it is promoted")
    assert engine.shadow is desk.shadow_runner is not None
    verdicts: list[tuple[str, str]] = []
    asked, swapped = threading.Event(), threading.Event()
    timing: dict[str, float] = {}
    engine.part_worker.detector = HeldPartModel(engine.part_worker.detector, asked, swapped)

    def swap() -> None:
        timing["asked"] = time.monotonic()
        try:
            desk.activate(V2, "ml", "hot swap under load")
        finally:
            swapped.set()

    def listen(event: EngineEvent) -> None:
        if isinstance(event, Inspected):
            assert event.model is not None
            verdicts.append((event.verdict.part_id, event.model.version))
            if event.model.version == "2" and "first" not in timing:
                timing["first"] = time.monotonic()
            if len(verdicts) == 3:
                asked.set()
                threading.Thread(target=swap).start()

    run_to_the_end(engine, listen)
    assert swapped.wait(30)

    shown = len(replay_sequence(board_pool(boards), 0.5, seed=0))
    counts = engine.loops[0].parts.counters
    assert counts.seen == shown == 12 and counts.inspected == shown and counts.uninspected == 0
    assert len(verdicts) == shown and len({p for p, _ in verdicts}) == shown  # every board once, none twice
    versions = [v for _, v in verdicts]
    first_new = versions.index("2")  # one runner: batches in order, so v1 until the swap, v2 after
    assert set(versions[:first_new]) == {"1"} and set(versions[first_new:]) == {"2"}
    assert 3 <= first_new < shown
    assert Counter(versions)["2"] >= 1 and timing["first"] >= timing["asked"]
    assert desk.active() == V2 and engine.defect_model.version == "2"
    assert desk.shadow() is None and engine.shadow is None  # the shadow was promoted: it stopped
    shadowed = {r["part_id"] for r in states.shadow_verdicts("line-1", V2)}
    assert shadowed and shadowed <= {p for p, _ in verdicts}  # stored apart (rows of its own), boards of this line
    db.dispose()
