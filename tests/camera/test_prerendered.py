"""Cameras playing frames rendered ahead: the loop is a whole replay, shared read-only, renumbered each pass."""

from __future__ import annotations

import pytest

from camera.frame import Frame
from camera.prerendered import PrerenderedLine, render_loop
from camera.synth import LineStyle
from inspection.ml.datasets.boards import board_pool

STYLE = LineStyle(width=320, height=160, board_px=100, seam_every_px=80)


@pytest.fixture
def loop(deeppcb_factory):  # type: ignore[no-untyped-def]
    return render_loop(
        board_pool(deeppcb_factory(boards=2, size=128)), boards=3, fps=50.0, speed_px_s=1500.0, style=STYLE
    )


def _play(src: PrerenderedLine) -> list[Frame]:
    src.start()
    frames = []
    while (f := src.read(timeout=5.0)) is not None:
        frames.append(f)
    src.stop()
    return frames


def test_the_loop_is_a_whole_replay_empty_belt_to_empty_belt(loop) -> None:  # type: ignore[no-untyped-def]
    assert loop.truth[0] == ()  # boards enter from the right edge: the first frame shows the belt alone
    seen = {t.appearance for truth in loop.truth for t in truth}
    assert seen == {0, 1, 2} and loop.boards == 3
    assert all(not f.flags.writeable for f in loop.frames)  # shared by every camera


def test_a_camera_plays_from_its_start_and_renumbers_each_pass(loop) -> None:  # type: ignore[no-untyped-def]
    n = len(loop.frames)
    start = n // 2
    frames = _play(PrerenderedLine("cam2", loop, start=start, frames=2 * n, fps=1000.0))
    assert len(frames) == 2 * n and [f.seq for f in frames] == list(range(2 * n))
    assert frames[0].image is loop.frames[start]  # no copy per camera
    appearances = [t.appearance for f in frames for t in f.truth]
    assert set(appearances[: len(appearances) // 4]) <= {0, 1, 2}
    assert max(appearances) >= 3  # the second pass's boards are new boards, never the same ones twice


def test_a_finite_camera_ends_its_stream(loop) -> None:  # type: ignore[no-untyped-def]
    src = PrerenderedLine("cam1", loop, frames=5, fps=1000.0)
    assert len(_play(src)) == 5 and src.played == 5
