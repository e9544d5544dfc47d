"""Part bookkeeping on synthetic lines with known ground truth: each board inspected exactly once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from camera.frame import Frame
from inspection.core.detections import Detections
from inspection.pipeline.parts import (
    InspectRequest,
    LineState,
    LineStateChanged,
    PartCounters,
    PartEntered,
    PartExited,
    PartsConfig,
    PartsError,
    PartTracker,
    PartUninspected,
)
from inspection.pipeline.tracking import ByteTrackConfig
from inspection.pipeline.trigger import LineTriggerConfig, ZoneTriggerConfig
from tests.inspection.test_tracking import IMAGE, Board, SimFrame, dets, simulate

BOARD_W = 240.0


@dataclass(frozen=True, eq=False)
class Run:
    """What a PartTracker reported over a whole simulated stream (closed at the end)."""

    requests: list[tuple[InspectRequest, SimFrame]]
    exited: list[PartExited]
    uninspected: list[PartUninspected]
    line: list[LineStateChanged]
    entered_ids: list[str]
    counters: PartCounters


def run(sim: list[SimFrame], config: PartsConfig | None = None) -> Run:
    parts = PartTracker("cam1", config or PartsConfig())
    requests: list[tuple[InspectRequest, SimFrame]] = []
    exited: list[PartExited] = []
    uninspected: list[PartUninspected] = []
    line: list[LineStateChanged] = []
    entered: list[str] = []
    for f in sim:
        upd = parts.update(f.boards, f.frame)
        requests += [(r, f) for r in upd.requests]
        exited += upd.exited
        uninspected += upd.uninspected
        line += upd.line_events
        entered += [e.part_id for e in upd.entered]
    end = parts.close()
    return Run(requests, exited + list(end.exited), uninspected + list(end.uninspected), line, entered, end.counters)


def board_of(req: InspectRequest, f: SimFrame) -> int:
    """The true board a request was fired for (its box at the request's frame)."""
    best = max(f.truth, key=lambda i: _iou(f.truth[i], req.board_xyxy))
    assert _iou(f.truth[best], req.board_xyxy) > 0.8
    return best


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def assert_each_inspected_once(r: Run, n_boards: int) -> None:
    boards = [board_of(req, f) for req, f in r.requests]
    assert sorted(boards) == list(range(n_boards)), boards
    assert len({req.part_id for req, _ in r.requests}) == n_boards
    assert r.counters == PartCounters(seen=n_boards, inspected=n_boards, uninspected=0)
    assert r.counters.coverage == 1.0
    assert r.uninspected == []
    assert sorted(e.part_id for e in r.exited) == sorted(r.entered_ids)
    assert all(e.inspected for e in r.exited)


def train(n: int, speed: float, gap: float, y0: float = 270.0) -> list[Board]:
    """``n`` boards in a row entering from the left, ``gap`` px apart."""
    return [Board(x0=-BOARD_W - 20 - i * (BOARD_W + gap), y0=y0, vx=speed) for i in range(n)]


def frames_to_clear(boards: list[Board], speed: float, fps: float, extra_s: float = 1.5) -> int:
    """Frames until the last board has left the view, plus time for the tracks to expire."""
    return int((1280 - min(b.x0 for b in boards)) / abs(speed) + extra_s * fps)


@pytest.mark.parametrize("speed,fps", [(2, 30), (6, 30), (15, 30), (35, 15), (60, 10), (90, 10)])
def test_every_board_inspected_once_across_speeds_and_frame_rates(speed: float, fps: float) -> None:
    boards = train(5, speed, gap=60)
    sim = simulate(
        boards, frames_to_clear(boards, speed, fps), fps=fps, jitter=2.0, miss=0.1, low_conf=0.1, seed=int(speed * fps)
    )
    r = run(sim)
    assert_each_inspected_once(r, 5)
    for req, f in r.requests:  # fired after crossing, fully inside, crop from the full frame
        center = (req.board_xyxy[0] + req.board_xyxy[2]) / 2
        assert center > 640 + 10 - 2
        assert req.board_xyxy[0] >= 3 and req.board_xyxy[2] <= 1277
        x1, y1, x2, y2 = req.crop_xyxy.tolist()
        np.testing.assert_array_equal(req.crop, IMAGE[y1:y2, x1:x2])
        assert req.frame_seq == f.frame.seq and req.t_capture == f.frame.t_mono


def test_two_boards_close_together_are_two_parts() -> None:
    for gap, speed in [(8, 12), (15, 40), (20, 4)]:
        boards = train(4, speed, gap=gap)
        sim = simulate(boards, frames_to_clear(boards, speed, 30), jitter=1.5, miss=0.05, seed=gap)
        assert_each_inspected_once(run(sim), 4)


def test_two_lanes_at_different_speeds() -> None:
    boards = [*train(3, 9, gap=40, y0=40), *train(3, 23, gap=100, y0=460)]
    sim = simulate(boards, frames_to_clear(boards[:3], 9, 30), jitter=2.0, miss=0.08, seed=11)
    assert_each_inspected_once(run(sim), 6)


def test_board_cut_by_the_frame_edge_is_never_inspected() -> None:
    boards = [Board(x0=-260, y0=-25, vx=20), Board(x0=-800, y0=270, vx=20)]  # the first is cut at the top
    sim = simulate(boards, frames_to_clear(boards, 20, 30), jitter=1.0, seed=2)
    r = run(sim)
    assert [board_of(req, f) for req, f in r.requests] == [1]
    assert r.counters == PartCounters(seen=2, inspected=1, uninspected=1)
    assert r.counters.coverage == 0.5
    [u] = r.uninspected
    assert "never fully inside" in u.reason
    assert [e.inspected for e in sorted(r.exited, key=lambda e: e.track_id)] == [False, True]


def test_board_entering_cut_is_inspected_once_fully_inside_after_the_line() -> None:
    # a trigger line near the left edge: the board's centre crosses it while the board is still cut
    config = PartsConfig(trigger=LineTriggerConfig(start=(60, 0), end=(60, 720), hysteresis_px=10))
    boards = train(2, 10, gap=50)
    sim = simulate(boards, frames_to_clear(boards, 10, 30), jitter=1.0, seed=4)
    r = run(sim, config)
    assert_each_inspected_once(r, 2)
    for req, _ in r.requests:
        assert req.board_xyxy[0] >= 3 and req.board_xyxy[0] < 20  # as soon as it is fully inside


def test_board_moving_the_wrong_way_is_not_inspected() -> None:
    boards = [Board(x0=1300, vx=-15), Board(x0=1800, vx=-15)]
    sim = simulate(boards, 200, jitter=2.0, miss=0.05, seed=5)
    r = run(sim)
    assert r.requests == []
    assert r.counters == PartCounters(seen=2, inspected=0, uninspected=2)
    assert all("without crossing" in u.reason for u in r.uninspected)


def test_board_that_leaves_without_crossing_is_uninspected() -> None:
    # in from the left, stops short of the line, goes back out to the left
    belt = np.r_[np.ones(50), np.zeros(20), -np.ones(70)]
    sim = simulate([Board(x0=-250, vx=10)], len(belt), belt=belt, jitter=2.0, seed=6)
    r = run(sim)
    assert r.requests == []
    [u] = r.uninspected
    assert u.part_id == r.entered_ids[0] and u.reason.startswith("left the view without crossing")
    assert r.counters.uninspected == 1 and r.counters.coverage == 0.0


@pytest.mark.parametrize("then_forward,expected", [(True, 1), (False, 0)])
def test_jitter_at_the_line_never_double_counts(then_forward: bool, expected: int) -> None:
    # the board's centre (x0 + 120 + s) reaches the line (640) and jitters in the band for 10 s
    cfg = PartsConfig(trigger=LineTriggerConfig(start=(640, 0), end=(640, 720), hysteresis_px=12))
    rng = np.random.default_rng(8)
    approach = 640 - (-250 + 120)
    jitter_steps = np.diff(np.r_[0.0, rng.uniform(-8, 8, 300)])
    leave = np.full(60, 20.0) if then_forward else np.full(60, -20.0)
    belt = np.r_[np.full(int(approach // 10), 10.0), [approach % 10], jitter_steps, -jitter_steps.sum(), leave]
    sim = simulate([Board(x0=-250, vx=1.0)], len(belt), belt=belt, jitter=2.0, seed=9)
    r = run(sim, cfg)
    assert len(r.requests) == expected
    assert r.counters.inspected + r.counters.uninspected == r.counters.seen == 1


def test_line_stops_and_starts() -> None:
    fps = 30
    belt = np.r_[np.ones(60), np.zeros(4 * fps), np.ones(30), np.zeros(fps), np.ones(30)]  # 4 s stop, 1 s pause
    sim = simulate(
        [Board(x0=100, vx=6), Board(x0=500, vx=6, y0=20)], len(belt), belt=belt, fps=fps, jitter=1.0, seed=10
    )
    r = run(sim, PartsConfig(stop_after_s=2.0, motion_px=5.0))
    assert [(e.previous, e.state, e.event_type) for e in r.line] == [
        (LineState.UNKNOWN, LineState.RUNNING, "line.started"),
        (LineState.RUNNING, LineState.STOPPED, "line.stopped"),
        (LineState.STOPPED, LineState.RUNNING, "line.started"),
    ]
    stop_t = sim[60].frame.t_mono
    assert r.line[1].t_capture == pytest.approx(stop_t + 2.0, abs=0.2)
    resume_t = sim[60 + 4 * fps].frame.t_mono
    assert resume_t <= r.line[2].t_capture <= resume_t + 0.2


def test_part_ids_events_and_request_values() -> None:
    sim = simulate(train(1, 20, gap=0), 80, jitter=0.0, seed=1)
    parts = PartTracker("cam1", PartsConfig(crop_margin_px=16))
    entered: list[PartEntered] = []
    requests: list[InspectRequest] = []
    for f in sim:
        before = f.boards.xyxy.copy()
        upd = parts.update(f.boards, f.frame)
        np.testing.assert_array_equal(f.boards.xyxy, before)  # input unchanged
        entered += upd.entered
        requests += upd.requests
    [e] = entered
    [req] = requests
    assert e.event_type == "part.entered"
    assert e.part_id == req.part_id == f"cam1-{e.track_id}-{e.frame_seq}"
    assert req.track_id == e.track_id and req.camera_id == "cam1"
    box = req.board_xyxy
    expect = [np.floor(box[0]) - 16, np.floor(box[1]) - 16, np.ceil(box[2]) + 16, np.ceil(box[3]) + 16]
    assert req.crop_xyxy.tolist() == expect
    assert req.crop.shape == (expect[3] - expect[1], expect[2] - expect[0], 3)
    assert not np.shares_memory(req.crop, IMAGE)


def test_crop_margin_is_clipped_to_the_frame() -> None:
    zone = ZoneTriggerConfig(polygon=((0, 0), (1280, 0), (1280, 120), (0, 120)), hysteresis_px=5)
    parts = PartTracker("cam1", PartsConfig(crop_margin_px=100, trigger=zone))
    reqs: list[InspectRequest] = []
    for k in range(12):  # moving up into a zone along the top edge, 10 px from the right edge
        y = 300 - 25 * k
        f = Frame(IMAGE, "cam1", k, k / 30, 0.0)
        reqs += parts.update(dets([[1000, y, 1270, y + 60]]), f).requests
    [req] = reqs
    assert req.frame_seq == 9  # centre at y=105: clearly inside the zone
    assert req.crop_xyxy.tolist() == [900, 0, 1280, 235]
    np.testing.assert_array_equal(req.crop, IMAGE[0:235, 900:1280])


def test_exit_is_reported_after_the_track_buffer() -> None:
    cfg = PartsConfig(tracker=ByteTrackConfig(track_buffer_s=0.5))
    sim = simulate(train(1, 40, gap=0), 60, jitter=0.0, seed=0)
    parts = PartTracker("cam1", cfg)
    last_seen: Frame | None = None
    exit_seq: int | None = None
    for f in sim:
        upd = parts.update(f.boards, f.frame)
        if len(upd.tracks):
            last_seen = f.frame
        if upd.exited:
            exit_seq = f.frame.seq
            [ex] = upd.exited
            assert last_seen is not None
            assert ex.inspected and ex.frame_seq == last_seen.seq and ex.t_capture == last_seen.t_mono
    assert last_seen is not None and exit_seq is not None
    assert 0.5 < sim[exit_seq].frame.t_mono - last_seen.t_mono <= 0.5 + 2 / 30


def test_frames_from_another_camera_or_going_back_are_refused() -> None:
    parts = PartTracker("cam1")
    parts.update(dets([]), Frame(IMAGE, "cam1", 5, 10.0, 0.0))
    with pytest.raises(PartsError, match="cam2"):
        parts.update(dets([]), Frame(IMAGE, "cam2", 6, 10.1, 0.0))
    with pytest.raises(PartsError, match="older"):
        parts.update(dets([]), Frame(IMAGE, "cam1", 4, 9.0, 0.0))


def test_detections_type_is_the_shared_one() -> None:
    assert isinstance(dets([[0, 0, 1, 1]]), Detections)
    assert all(f.description for f in PartsConfig.model_fields.values())
