"""Trigger geometry (line, segment, zone), hysteresis band and the crossing state machine."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from inspection.pipeline.trigger import (
    CrossingState,
    LineTrigger,
    LineTriggerConfig,
    Side,
    TriggerConfig,
    ZoneTrigger,
    ZoneTriggerConfig,
    anchor_points,
    build_trigger,
)

B, N, A = Side.BEFORE, Side.BAND, Side.AFTER


def sides(trigger: LineTrigger | ZoneTrigger, points: Sequence[Sequence[float]]) -> list[int]:
    return trigger.side(np.asarray(points, float)).tolist()


def run(states: list[int]) -> list[bool]:
    """``crossed`` after each step, from a fresh state."""
    state, out = CrossingState(), []
    for s in states:
        state = state.step(s)
        out.append(state.crossed)
    return out


def test_vertical_line_left_to_right_with_band() -> None:
    trig = build_trigger(LineTriggerConfig(start=(640, 0), end=(640, 720), hysteresis_px=10))
    pts = [(600, 300), (629.5, 300), (630.5, 300), (640, 300), (649, 300), (650.5, 300), (900, 10)]
    assert sides(trig, pts) == [B, B, N, N, N, A, A]


def test_direction_flips_the_sides_and_end_order_does_not_matter() -> None:
    rtl = build_trigger(LineTriggerConfig(start=(640, 720), end=(640, 0), direction="right_to_left"))
    ltr = build_trigger(LineTriggerConfig(start=(640, 720), end=(640, 0), direction="left_to_right"))
    pts = [(600, 300), (700, 300)]
    assert sides(rtl, pts) == [A, B]
    assert sides(ltr, pts) == [B, A]


def test_diagonal_segment_and_points_beyond_its_ends_are_band() -> None:
    trig = build_trigger(
        LineTriggerConfig(start=(100, 100), end=(300, 300), direction="left_to_right", hysteresis_px=5)
    )
    # left_to_right: at the same y, the side with the larger x is after
    assert sides(trig, [(150, 250), (250, 150), (200, 202)]) == [B, A, N]
    assert sides(trig, [(500, 300), (600, 700)]) == [N, N]  # past the segment's end: never counts


def test_zone_enter_and_exit() -> None:
    square = ((400, 200), (800, 200), (800, 500), (400, 500))
    enter = build_trigger(ZoneTriggerConfig(polygon=square, hysteresis_px=8))
    exit_ = build_trigger(ZoneTriggerConfig(polygon=square, direction="exit", hysteresis_px=8))
    pts = [(300, 300), (395, 300), (405, 300), (600, 350), (600, 495), (600, 520)]
    assert sides(enter, pts) == [B, N, N, A, N, B]
    assert sides(exit_, pts) == [A, N, N, B, N, A]


def test_anchor_points() -> None:
    box = np.array([[100, 200, 300, 400]], np.float32)
    assert anchor_points(box, "center").tolist() == [[200, 300]]
    assert anchor_points(box, "right").tolist() == [[300, 300]]
    assert anchor_points(box, "top").tolist() == [[200, 200]]


def test_before_to_after_crosses_once_even_when_jumping_over_the_band() -> None:
    assert run([B, B, N, A, A, N, A]) == [False, False, False, True, True, True, True]
    assert run([B, A]) == [False, True]


def test_jitter_inside_the_band_never_crosses() -> None:
    rng = np.random.default_rng(0)
    trig = build_trigger(LineTriggerConfig(start=(640, 0), end=(640, 720), hysteresis_px=10))
    xs = 640 + rng.uniform(-9.9, 9.9, 500)
    s = trig.side(np.stack([xs, np.full(500, 300.0)], 1)).tolist()
    assert set(s) == {N}
    assert not any(run([B, *s]))  # armed, then jitter in the band: still nothing


def test_wrong_direction_never_crosses() -> None:
    assert not any(run([A, A, N, B, B, N, B]))
    assert not any(run([N, A, A, A]))  # first seen after the line: never armed


def test_back_and_forth_counts_as_one_crossing() -> None:
    states = run([B, A, B, A, B, A])
    assert states[1] and all(states[1:])
    flips = sum(1 for a, b in zip([False, *states], states, strict=False) if b and not a)
    assert flips == 1


def test_config_rejects_bad_geometry_and_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="same point"):
        LineTriggerConfig(start=(5, 5), end=(5, 5))
    with pytest.raises(ValidationError, match="along the trigger line"):
        LineTriggerConfig(start=(0, 300), end=(1280, 300), direction="left_to_right")
    with pytest.raises(ValidationError):
        LineTriggerConfig(start=(0, 0), end=(0, 10), hysteresis=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        ZoneTriggerConfig(polygon=((0, 0), (1, 1)))


def test_trigger_config_union_is_keyed_on_type() -> None:
    adapter: TypeAdapter[LineTriggerConfig | ZoneTriggerConfig] = TypeAdapter(TriggerConfig)
    line = adapter.validate_python({"type": "line", "start": [640, 0], "end": [640, 720]})
    zone = adapter.validate_python({"type": "zone", "polygon": [[0, 0], [10, 0], [10, 10]]})
    assert isinstance(build_trigger(line), LineTrigger) and isinstance(build_trigger(zone), ZoneTrigger)
    for cfg in (LineTriggerConfig, ZoneTriggerConfig):
        assert all(f.description for f in cfg.model_fields.values())
