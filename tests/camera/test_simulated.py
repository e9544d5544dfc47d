"""The simulated line: truth where boards are drawn, complete seeded replays, camera behaviour."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera.boards import BoardSprite
from camera.errors import CameraError
from camera.frame import Frame, SourceState
from camera.simulated import BoardPool, LineMotion, LineScene, SimulatedLine, replay_sequence, split_sequence
from camera.synth import Effects, LineStyle, render
from inspection.ml.datasets.boards import board_pool
from tests.conftest import wait_until

STYLE = LineStyle(width=320, height=160, board_px=100, seam_every_px=80)
FAST = LineMotion(speed_px_s=600.0, fps=20.0, spacing_px=30.0)  # 30 px per frame


def white(name: str, defective: bool | None = None) -> BoardSprite:
    return BoardSprite(name, np.full((50, 50), 255, np.uint8), defective, np.zeros((0, 5), np.float32))


def run_scene(scene: LineScene, limit: int = 5000) -> list[tuple[np.ndarray, tuple]]:
    out: list[tuple[np.ndarray, tuple]] = []
    for _ in range(limit):
        step = scene.step()
        if step is None:
            return out
        out.append(step)
    raise AssertionError("replay did not end")


@pytest.fixture
def pool(deeppcb_factory) -> BoardPool:
    return board_pool(deeppcb_factory(boards=6, size=128))


def test_deeppcb_pool_has_tested_boards_defective_and_templates_good(pool: BoardPool):
    assert len(pool.defective) == len(pool.good) == 6
    assert all(b.name.endswith("_test.jpg") and b.defective for b in pool.defective)
    assert all(b.name.endswith("_temp.jpg") and b.defective is False for b in pool.good)


def test_folder_pool_has_unknown_truth(tmp_path: Path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"part{i}.png"), np.full((40, 40), 200, np.uint8))
    pool = board_pool(tmp_path)
    seq = replay_sequence(pool, seed=1)
    assert sorted(p.sprite.name for p in seq) == ["part0.png", "part1.png", "part2.png"]
    frames = run_scene(LineScene(pool, STYLE, FAST, sequence=seq))
    truths = [t for _, truth in frames for t in truth]
    assert truths and all(t.defective is None for t in truths)
    with pytest.raises(CameraError, match="no such board folder"):
        board_pool(tmp_path / "missing")


def test_truth_boxes_are_where_the_boards_are_drawn():
    pool = BoardPool(unknown=(white("w.png"),))
    scene = LineScene(pool, STYLE, LineMotion(speed_px_s=300, fps=10, spacing_px=40))
    seen = 0
    for _ in range(40):
        image, truth = scene.step()  # type: ignore[misc]
        covered = np.zeros(STYLE.width, bool)
        for t in truth:
            x1, y1, x2, y2 = t.xyxy.astype(int)
            assert image[y1:y2, x1:x2].min() == 255  # all board inside the box
            assert y1 == (STYLE.height - STYLE.board_px) // 2 and y2 - y1 == STYLE.board_px
            covered[x1:x2] = True
            seen += 1
        assert image[:, ~covered].max(initial=0) < 200  # belt everywhere else
    assert seen > 20


@pytest.mark.parametrize("angle", [0.0, 4.0])
def test_frames_and_boxes_equal_the_synth_renderer(pool: BoardPool, angle: float):
    motion = LineMotion(
        speed_px_s=400,
        fps=10,
        spacing_px=20,
        spacing_jitter_px=15,
        y_jitter_px=20,
        scale_jitter=0.1,
        angle_jitter_deg=angle,
        seed=3,
    )
    scene = LineScene(pool, STYLE, motion, sequence=replay_sequence(pool, seed=3)[:5])
    rng = np.random.default_rng(0)
    frames = 0
    while True:
        offset = motion.speed_px_s * scene.tick / motion.fps
        step = scene.step()
        if step is None:
            break
        image, truth = step
        ref, boxes = render(STYLE, scene.belt, offset, [b.placement for b in scene.on_belt], Effects(), rng)
        assert np.array_equal(image, ref)
        assert [t.xyxy.tolist() for t in truth] == [b.tolist() for _, b in boxes]
        frames += 1
    assert frames > 10


def test_replay_shows_every_tested_board_once_with_the_defect_rate(pool: BoardPool):
    for rate, total in ((0.5, 12), (0.25, 24), (1.0, 6)):
        seq = replay_sequence(pool, defect_rate=rate, seed=7)
        assert len(seq) == total
        assert Counter(p.sprite.name for p in seq if p.sprite.defective) == {b.name: 1 for b in pool.defective}
        assert sum(bool(p.sprite.defective) for p in seq) / len(seq) == rate
        assert len({p.appearance for p in seq}) == len(seq)
    frames = run_scene(LineScene(pool, STYLE, FAST, sequence=replay_sequence(pool, seed=7)))
    shown = {t.appearance: t.name for _, truth in frames for t in truth}
    assert len(shown) == 12
    assert sorted(n for n in shown.values() if n.endswith("_test.jpg")) == sorted(b.name for b in pool.defective)
    assert sum(t.defective is True for t in _first(frames)) == 6


def _first(frames: list[tuple[np.ndarray, tuple]]) -> list:
    firsts: dict[int, object] = {}
    for _, truth in frames:
        for t in truth:
            firsts.setdefault(t.appearance, t)
    return list(firsts.values())


def test_replay_is_deterministic_with_a_seed(pool: BoardPool):
    a = run_scene(LineScene(pool, STYLE, FAST, Effects(noise_sigma=4), replay_sequence(pool, seed=5)))
    b = run_scene(LineScene(pool, STYLE, FAST, Effects(noise_sigma=4), replay_sequence(pool, seed=5)))
    assert len(a) == len(b)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
    assert [[(t.appearance, t.name, t.xyxy.tolist()) for t in x[1]] for x in a] == [
        [(t.appearance, t.name, t.xyxy.tolist()) for t in y[1]] for y in b
    ]
    other = [p.sprite.name for p in replay_sequence(pool, seed=6)]
    assert other != [p.sprite.name for p in replay_sequence(pool, seed=5)]


def test_split_gives_each_board_to_exactly_one_camera(pool: BoardPool):
    seq = replay_sequence(pool, seed=2)
    parts = split_sequence(seq, 3)
    assert len(parts) == 3 and all(parts)
    ids = [p.appearance for part in parts for p in part]
    assert sorted(ids) == sorted(p.appearance for p in seq)


def test_endless_mode_picks_defective_boards_at_the_rate(pool: BoardPool):
    rng = np.random.default_rng(0)
    picks = [bool(pool.pick(rng, 0.3).defective) for _ in range(4000)]
    assert 0.27 < sum(picks) / len(picks) < 0.33
    scene = LineScene(pool, STYLE, FAST)
    appearances = {t.appearance for _ in range(200) for t in scene.step()[1]}  # type: ignore[index]
    assert len(appearances) > 20  # never ends, new boards keep coming


def drain(cam: SimulatedLine, timeout: float = 20.0) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        f = cam.read(1.0)
        if f is None and cam.drained:
            return frames
        if f is not None:
            frames.append(f)
    raise AssertionError("the source did not stop")


def test_replay_camera_loses_nothing_and_stops_after_the_last_board(pool: BoardPool):
    seq = replay_sequence(pool, seed=4)
    cams = [
        SimulatedLine(f"cam{i}", pool, style=STYLE, motion=FAST, sequence=part, realtime=False, buffer_size=2)
        for i, part in enumerate(split_sequence(seq, 2))
    ]
    for cam in cams:
        cam.start()
    try:
        per_cam = [drain(cam) for cam in cams]
    finally:
        for cam in cams:
            cam.stop()
    seen = [{t.appearance for f in frames for t in f.truth} for frames in per_cam]
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == {p.appearance for p in seq}
    for cam, frames in zip(cams, per_cam, strict=True):
        assert [f.seq for f in frames] == list(range(len(frames)))  # not one dropped
        assert cam.stats().dropped == 0 and cam.finished and cam.stats().reconnects == 0
        assert frames[-1].truth == ()  # the last board has left the frame
        assert frames[0].image.shape == (STYLE.height, STYLE.width, 3)


def test_real_time_camera_keeps_its_frame_rate(pool: BoardPool):
    cam = SimulatedLine("rt", pool, style=STYLE, motion=LineMotion(fps=25.0), realtime=True, buffer_size=100)
    t0 = time.monotonic()
    cam.start()
    try:  # wait for the frames, never assume how many a sleep gave (a busy machine gives fewer)
        assert wait_until(lambda: cam.stats().frames_in >= 20, 30), cam.stats()
        stats = cam.stats()
        elapsed = time.monotonic() - t0
    finally:
        cam.stop()
    assert stats.state is SourceState.RUNNING and stats.online
    assert stats.frames_in <= elapsed * 25.0 + 2  # never ahead of real time: 25 fps paces the frames
    assert stats.fps < 35
    assert cam.state is SourceState.STOPPED


def test_rendering_is_fast_enough_for_full_hd_lines(pool: BoardPool):
    scene = LineScene(pool, LineStyle(), LineMotion(angle_jitter_deg=3.0, seed=1))
    scene.step()
    t = time.perf_counter()
    for _ in range(60):
        scene.step()
    per_frame = (time.perf_counter() - t) / 60
    assert per_frame < 0.015, f"{per_frame * 1000:.1f} ms per 1280x720 frame"
