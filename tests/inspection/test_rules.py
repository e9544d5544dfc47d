"""Verdict rules: known answers for pass, fail, uncertain, minimum area and per-class thresholds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from pydantic import ValidationError

from inspection.core.detections import Detections
from inspection.core.outcome import Outcome
from inspection.pipeline.parts import InspectRequest
from inspection.pipeline.rules import RulesConfig, RulesError, apply_rules

CLASSES = ("open", "short", "mousebite", "spur", "copper", "pin-hole")


def request() -> InspectRequest:
    crop = np.full((200, 260, 3), 7, np.uint8)
    return InspectRequest(
        "cam1-3-40",
        "cam1",
        3,
        crop,
        np.array([116, 66, 360, 250], np.float32),
        np.array([100, 50, 376, 266], np.int64),
        52,
        12.5,
        1.7e9,
    )


Row = tuple[str, float, Sequence[float]]


def defects(rows: Sequence[Row]) -> Detections:
    """Rows of (class name, confidence, [x1, y1, x2, y2]) in crop pixels."""
    n = len(rows)
    return Detections(
        np.asarray([r[2] for r in rows], np.float32).reshape(n, 4),
        np.asarray([r[1] for r in rows], np.float32),
        np.asarray([CLASSES.index(r[0]) for r in rows], np.int64),
        CLASSES,
    )


BOX = [10.0, 10.0, 40.0, 40.0]  # 900 px²


@pytest.mark.parametrize(
    "rows,outcome,kept",
    [
        ([], Outcome.PASS, 0),
        ([("short", 0.1, BOX)], Outcome.PASS, 0),  # below uncertain_low: ignored
        ([("short", 0.8, BOX)], Outcome.FAIL, 1),
        ([("short", 0.5, BOX)], Outcome.FAIL, 1),  # the threshold itself fails
        ([("open", 0.3, BOX)], Outcome.UNCERTAIN, 1),
        ([("open", 0.25, BOX)], Outcome.UNCERTAIN, 1),  # uncertain_low itself is uncertain
        ([("open", 0.3, BOX), ("spur", 0.9, BOX)], Outcome.FAIL, 2),  # a clear fail wins; both kept as evidence
        ([("open", 0.3, BOX), ("spur", 0.2, BOX)], Outcome.UNCERTAIN, 1),
    ],
)
def test_known_answers_with_defaults(rows: list[Row], outcome: Outcome, kept: int) -> None:
    v = apply_rules(request(), defects(rows), RulesConfig())
    assert v.outcome is outcome
    assert len(v.defects) == kept
    assert len(v.reasons) == kept
    assert (v.outcome is Outcome.PASS) == (v.reasons == ())


def test_minimum_area_drops_small_boxes() -> None:
    rows: list[Row] = [("short", 0.95, [0, 0, 9, 9]), ("open", 0.3, [50, 50, 59, 60])]  # 81 and 90 px²
    assert apply_rules(request(), defects(rows), RulesConfig(min_area_px2=100)).outcome is Outcome.PASS
    v = apply_rules(request(), defects(rows), RulesConfig(min_area_px2=85))
    assert v.outcome is Outcome.UNCERTAIN and v.defects.class_id.tolist() == [CLASSES.index("open")]
    assert apply_rules(request(), defects(rows), RulesConfig(min_area_px2=80)).outcome is Outcome.FAIL


def test_per_class_thresholds_override_the_default() -> None:
    config = RulesConfig(fail_threshold=0.5, class_thresholds={"spur": 0.8, "pin-hole": 0.3}, uncertain_low=0.2)
    assert apply_rules(request(), defects([("spur", 0.7, BOX)]), config).outcome is Outcome.UNCERTAIN
    assert apply_rules(request(), defects([("spur", 0.85, BOX)]), config).outcome is Outcome.FAIL
    assert apply_rules(request(), defects([("pin-hole", 0.35, BOX)]), config).outcome is Outcome.FAIL
    assert apply_rules(request(), defects([("pin-hole", 0.25, BOX)]), config).outcome is Outcome.UNCERTAIN
    assert apply_rules(request(), defects([("short", 0.45, BOX)]), config).outcome is Outcome.UNCERTAIN


def test_verdict_carries_the_request_and_readable_reasons() -> None:
    rows: list[Row] = [("open", 0.31, [1, 2, 30, 40]), ("short", 0.62, [100.4, 20, 140, 60]), ("copper", 0.91, BOX)]
    d = defects(rows)
    v = apply_rules(request(), d, RulesConfig())
    assert (v.part_id, v.camera_id, v.track_id, v.frame_seq, v.t_capture) == ("cam1-3-40", "cam1", 3, 52, 12.5)
    assert v.board_xyxy.tolist() == [100, 50, 376, 266]  # where the crop was cut: crop + offset = frame
    assert v.crop.shape == (200, 260, 3)
    assert v.reasons == (
        "fail: copper 0.91 >= 0.50 at (10,10)-(40,40)",
        "fail: short 0.62 >= 0.50 at (100,20)-(140,60)",
        "uncertain: open 0.31 in [0.25, 0.50) at (1,2)-(30,40)",
    )
    assert [CLASSES[k] for k in v.defects.class_id] == ["copper", "short", "open"]
    assert v.defects.class_names == CLASSES
    assert len(d) == 3 and d.confidence.tolist() == pytest.approx([0.31, 0.62, 0.91])  # input unchanged
    assert not np.shares_memory(v.defects.xyxy, d.xyxy)


def test_config_is_strict_and_documented() -> None:
    with pytest.raises(ValidationError):
        RulesConfig(fail_treshold=0.4)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="below uncertain_low"):
        RulesConfig(fail_threshold=0.5, uncertain_low=0.6)
    with pytest.raises(ValidationError, match="spur"):
        RulesConfig(class_thresholds={"spur": 0.1}, uncertain_low=0.25)
    with pytest.raises(ValidationError):
        RulesConfig(class_thresholds={"spur": 1.5})
    assert all(f.description for f in RulesConfig.model_fields.values())


def test_threshold_for_a_class_the_model_lacks_is_an_error() -> None:
    with pytest.raises(RulesError, match="scratch"):
        apply_rules(request(), defects([]), RulesConfig(class_thresholds={"scratch": 0.6}))
