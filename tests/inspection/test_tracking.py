"""ByteTrack on synthetic board trajectories: stable ids, two-stage association, buffer, assignment."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pytest

from camera.frame import Frame
from inspection.core.detections import Detections
from inspection.pipeline.tracking import ByteTrack, ByteTrackConfig, TrackingError, Tracks, linear_assignment, match

W, H = 1280, 720
NAMES = ("board",)
# One shared, never-changed image: pixel values encode (x, y) so crops can be checked.
_yy, _xx = np.mgrid[0:H, 0:W]
IMAGE = np.stack([_xx % 256, _yy % 256, (_xx // 256) * 16 + (_yy // 256)], axis=-1).astype(np.uint8)
IMAGE.flags.writeable = False


@dataclass(frozen=True)
class Board:
    """A board on the belt: its box at belt position 0 and its speed in px per belt step."""

    x0: float
    y0: float = 270.0
    vx: float = 10.0
    vy: float = 0.0
    w: float = 240.0
    h: float = 180.0

    def box(self, s: float) -> np.ndarray:
        x, y = self.x0 + self.vx * s, self.y0 + self.vy * s
        return np.array([x, y, x + self.w, y + self.h])


@dataclass(frozen=True, eq=False)
class SimFrame:
    frame: Frame
    boards: Detections
    truth: dict[int, np.ndarray] = field(default_factory=dict)  # board index -> visible true box


def simulate(
    boards: list[Board],
    n_frames: int,
    fps: float = 30.0,
    jitter: float = 0.0,
    miss: float = 0.0,
    low_conf: float = 0.0,
    seed: int = 0,
    belt: np.ndarray | None = None,
    camera_id: str = "cam1",
) -> list[SimFrame]:
    """Frames of boards moving across a 1280x720 view; ``belt`` is the belt movement per frame (1 = full speed)."""
    rng = np.random.default_rng(seed)
    steps = np.ones(n_frames) if belt is None else np.asarray(belt, float)
    pos = np.concatenate([[0.0], np.cumsum(steps)[:-1]])
    out = []
    for k in range(n_frames):
        boxes, confs, truth = [], [], {}
        for i, b in enumerate(boards):
            true = b.box(pos[k])
            vis = np.clip(true, [0, 0, 0, 0], [W, H, W, H])
            if vis[2] - vis[0] < 30 or vis[3] - vis[1] < 30:
                continue
            truth[i] = vis
            if rng.random() < miss:
                continue
            boxes.append(np.clip(vis + rng.uniform(-jitter, jitter, 4), [0, 0, 0, 0], [W, H, W, H]))
            confs.append(0.3 if rng.random() < low_conf else rng.uniform(0.7, 0.95))
        det = Detections(
            np.asarray(boxes, np.float32).reshape(-1, 4),
            np.asarray(confs, np.float32),
            np.zeros(len(boxes), np.int64),
            NAMES,
        )
        frame = Frame(IMAGE, camera_id, k, 100.0 + k / fps, 1.7e9 + k / fps)
        out.append(SimFrame(frame, det, truth))
    return out


def dets(boxes: list[list[float]], conf: list[float] | None = None) -> Detections:
    n = len(boxes)
    return Detections(
        np.asarray(boxes, np.float32).reshape(n, 4),
        np.asarray(conf if conf is not None else [0.9] * n, np.float32),
        np.zeros(n, np.int64),
        NAMES,
    )


def ids_per_board(sim: list[SimFrame], tracker: ByteTrack) -> dict[int, set[int]]:
    """Track ids each true board was given (matched by IoU > 0.5 with its true visible box)."""
    seen: dict[int, set[int]] = {}
    for f in sim:
        tracks = tracker.update(f.boards, f.frame.t_mono)
        for i, true in f.truth.items():
            for box, tid in zip(tracks.xyxy, tracks.track_id, strict=True):
                if _iou(box, true) > 0.5:
                    seen.setdefault(i, set()).add(int(tid))
    return seen


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize("speed,fps", [(3, 30), (15, 30), (40, 10), (70, 15)])
def test_one_stable_id_per_board_with_jitter_and_misses(speed: float, fps: float) -> None:
    gap = 25.0
    boards = [Board(x0=-260 - i * (240 + gap), vx=speed) for i in range(3)]
    n = int((W + 4 * 265) / speed) + 5
    sim = simulate(boards, n, fps=fps, jitter=2.0, miss=0.1, low_conf=0.1, seed=int(speed))
    seen = ids_per_board(sim, ByteTrack())
    assert sorted(seen) == [0, 1, 2]
    assert all(len(ids) == 1 for ids in seen.values()), seen
    assert len(set().union(*seen.values())) == 3


def test_two_lanes_different_speeds_keep_their_ids() -> None:
    boards = [Board(x0=-250, y0=60, vx=12), Board(x0=-250, y0=420, vx=20), Board(x0=-700, y0=420, vx=20)]
    sim = simulate(boards, 110, jitter=2.0, miss=0.05, seed=3)
    seen = ids_per_board(sim, ByteTrack())
    assert sorted(seen) == [0, 1, 2] and all(len(v) == 1 for v in seen.values()), seen


def test_missed_frames_within_buffer_keep_the_id_and_report_it_lost() -> None:
    tracker = ByteTrack(ByteTrackConfig(track_buffer_s=0.5))
    t = 0.0
    for k in range(5):
        out = tracker.update(dets([[100 + 10 * k, 100, 340, 280]]), t)
        t += 0.1
    assert out.track_id.tolist() == [1]
    for _ in range(3):  # 0.3 s without a detection: lost, still kept
        out = tracker.update(dets([]), t)
        assert len(out) == 0 and out.lost_id.tolist() == [1] and out.alive_id.tolist() == [1]
        t += 0.1
    out = tracker.update(dets([[180, 100, 420, 280]]), t)  # where constant velocity puts it
    assert out.track_id.tolist() == [1] and out.lost_id.size == 0


def test_track_is_dropped_after_the_buffer_and_ids_are_not_reused() -> None:
    tracker = ByteTrack(ByteTrackConfig(track_buffer_s=0.25))
    for k in range(3):
        tracker.update(dets([[100, 100, 300, 300]]), k * 0.1)
    out = tracker.update(dets([]), 0.4)
    assert out.lost_id.tolist() == [1]
    out = tracker.update(dets([]), 0.6)  # 0.4 s since last seen > 0.25
    assert out.alive_id.size == 0
    for k in range(2):
        out = tracker.update(dets([[100, 100, 300, 300]]), 0.7 + k * 0.1)
    assert out.track_id.tolist() == [2]


def test_low_score_detections_extend_tracks_but_never_start_them() -> None:
    tracker = ByteTrack()
    for k in range(3):
        out = tracker.update(dets([[100 + 5 * k, 100, 300 + 5 * k, 300]], [0.9]), k / 30)
    out = tracker.update(dets([[115, 100, 315, 300], [700, 100, 900, 300]], [0.3, 0.3]), 3 / 30)
    assert out.track_id.tolist() == [1]
    np.testing.assert_allclose(out.confidence, [0.3])
    np.testing.assert_allclose(out.xyxy, [[115, 100, 315, 300]])
    for k in range(4, 8):  # the low-score box alone, many frames: never a track
        out = tracker.update(dets([[700, 100, 900, 300]], [0.3]), k / 30)
    assert len(out) == 0 and out.alive_id.tolist() == [1]  # only the first board, lost in its buffer


def test_one_frame_false_positive_never_gets_an_id() -> None:
    tracker = ByteTrack()
    out = tracker.update(dets([[10, 10, 100, 100]]), 0.0)
    assert len(out) == 0
    out = tracker.update(dets([]), 0.033)
    out = tracker.update(dets([[10, 10, 100, 100]]), 0.066)
    assert len(out) == 0 and out.alive_id.size == 0


def test_update_never_changes_its_input_and_returns_new_arrays() -> None:
    tracker = ByteTrack()
    d = dets([[100, 100, 300, 300], [500, 100, 700, 300]])
    before = (d.xyxy.copy(), d.confidence.copy(), d.class_id.copy())
    for k in range(3):
        out = tracker.update(d, k * 0.1)
    for a, b in zip(before, (d.xyxy, d.confidence, d.class_id), strict=True):
        np.testing.assert_array_equal(a, b)
    assert isinstance(out, Tracks) and out.xyxy.dtype == np.float32 and out.track_id.dtype == np.int64
    assert not np.shares_memory(out.xyxy, d.xyxy)
    assert out.track_id.tolist() == [1, 2]


def test_time_going_backwards_raises() -> None:
    tracker = ByteTrack()
    tracker.update(dets([]), 1.0)
    with pytest.raises(TrackingError, match="backwards"):
        tracker.update(dets([]), 0.5)


def test_linear_assignment_is_optimal_against_brute_force() -> None:
    rng = np.random.default_rng(7)
    for trial in range(300):
        n, m = (int(v) for v in rng.integers(1, 6, 2))
        cost = rng.random((n, m)) if trial % 2 else rng.integers(0, 3, (n, m)).astype(float)
        rows, cols = linear_assignment(cost)
        assert len(rows) == min(n, m) and len(set(cols.tolist())) == len(cols)
        assert rows.tolist() == sorted(rows.tolist())
        if n <= m:
            best = min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
        else:
            best = min(sum(cost[p[j], j] for j in range(m)) for p in itertools.permutations(range(n), m))
        assert cost[rows, cols].sum() == pytest.approx(best)


def test_match_gates_pairs_below_the_iou() -> None:
    a = np.array([[0, 0, 100, 100], [200, 0, 300, 100]], float)
    b = np.array([[205, 0, 305, 100], [900, 900, 950, 950], [2, 0, 102, 100]], float)
    ia, ib = match(a, b, 0.3)
    assert sorted(zip(ia.tolist(), ib.tolist(), strict=True)) == [(0, 2), (1, 0)]
