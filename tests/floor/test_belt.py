"""The line model learns pitch, transit and speed, then reports what it did not expect as twin.drift."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import numpy as np

from floor.belt import BeltModel
from floor.config import BeltSettings
from inspection.pipeline.events import LineState, LineStateChanged, PartEntered, PartTriggered, PartUninspected
from sync.events import Draft


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def box(x: float) -> np.ndarray:
    return np.array([x - 50, 100, x + 50, 200], np.float32)


def model() -> tuple[BeltModel, list[Draft], Clock]:
    out: list[Draft] = []
    clock = Clock()

    def publish(found: Any) -> Future[Any]:
        out.extend(found)
        done: Future[Any] = Future()
        done.set_result(None)
        return done

    belt = BeltModel(BeltSettings(enabled=True, learn_boards=5, gap_factor=2.5), "line-1", "edge-1", publish, clock)
    return belt, out, clock


def board(belt: BeltModel, clock: Clock, i: int, t: float) -> None:
    """A board enters at x=1200 at t and reaches the trigger (x=600) 2 s later: 300 px/s."""
    clock.t = t
    belt(PartEntered(f"p{i}", "cam1", i, box(1200), i, t))
    clock.t = t + 2.0
    belt(PartTriggered(f"p{i}", "cam1", i, box(600), i, t + 2.0, t + 2.0))


def fields(out: list[Draft]) -> list[str]:
    return [d.data["differences"][0]["field"] for d in out]


def test_learned_model_then_gap_twice_missed_stopped_and_speed() -> None:
    belt, out, clock = model()
    for i in range(7):  # a board every second
        board(belt, clock, i, float(i))
    assert out == []
    cam = belt._cams["cam1"]
    assert belt.pitch(cam) == 1.0 and belt.transit(cam) == 2.0 and belt.speed(cam) == 300.0
    clock.t = 8.0 + 2.6  # the last trigger was at 8.0: 2.6 pitches without a board
    belt.check()
    belt.check()  # reported once
    assert fields(out) == ["belt.cam1.gap"]
    assert out[0].data["differences"][0]["expected"] == "a board every 1.00 s"
    board(belt, clock, 7, 9.0)  # at the trigger at 11.0
    clock.t = 11.2
    belt(PartTriggered("p7b", "cam1", 70, box(600), 70, 11.2, 11.2))  # the same board tracked again
    assert fields(out)[-1] == "belt.cam1.twice"
    belt(PartEntered("p8", "cam1", 8, box(1200), 8, 11.5))
    belt(PartUninspected("p8", "cam1", 8, "left the view without crossing the trigger", 8, 12.0))
    assert fields(out)[-1] == "belt.cam1.missed"
    belt(PartEntered("p9", "cam1", 9, box(1200), 9, 12.0))
    clock.t = 12.0 + 2.5 * 2.0 + 0.1  # never reached the trigger, never left
    belt.check()
    assert "belt.cam1.missed" in fields(out)[-2:]
    belt(LineStateChanged("cam1", LineState.STOPPED, LineState.RUNNING, 20, 17.5))
    assert fields(out)[-1] == "belt.cam1.stopped"
    belt(LineStateChanged("cam1", LineState.RUNNING, LineState.STOPPED, 21, 18.0))
    for i in range(20, 26):  # the belt now runs at half speed: 4 s from entering to the trigger
        clock.t = 20.0 + i
        belt(PartEntered(f"s{i}", "cam1", i, box(1200), i, clock.t))
        clock.t += 4.0
        belt(PartTriggered(f"s{i}", "cam1", i, box(600), i, clock.t, clock.t))
    assert fields(out).count("belt.cam1.speed") == 1
    assert all(d.type == "twin.drift" and d.data["expected"]["camera_id"] == "cam1" for d in out)


def test_configured_model_needs_no_learning() -> None:
    out: list[Draft] = []
    clock = Clock()

    def publish(found: Any) -> Future[Any]:
        out.extend(found)
        return Future()

    belt = BeltModel(BeltSettings(enabled=True, pitch_s=0.5, speed_px_s=300), "line-1", "e", publish, clock)
    board(belt, clock, 0, 0.0)
    clock.t = 2.0 + 0.5 * 2.5 + 0.01
    belt.check()
    assert fields(out) == ["belt.cam1.gap"]
