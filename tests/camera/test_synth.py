"""The line renderer: boxes follow the boards, partial boards are labelled, frames are reproducible."""

from __future__ import annotations

import numpy as np

from camera.boards import BoardSprite
from camera.synth import MIN_VISIBLE, Effects, LineStyle, Placement, belt_texture, random_scene, render
from inspection.ml.datasets.synthline import synth_line_dataset
from inspection.ml.datasets.yolo import load_data_yaml

STYLE = LineStyle(width=640, height=360, board_px=200, seam_every_px=160)


def sprite(name="b.jpg", value=255):
    return BoardSprite(name, np.full((64, 64), value, np.uint8), None, np.zeros((0, 5), np.float32))


def test_box_is_where_the_board_is_drawn():
    rng = np.random.default_rng(0)
    belt = belt_texture(STYLE, rng)
    frame, boxes = render(STYLE, belt, 0.0, [Placement(sprite(), 100, 50)], Effects(), rng)
    assert len(boxes) == 1
    x1, y1, x2, y2 = boxes[0][1]
    assert (x1, y1, x2, y2) == (100, 50, 300, 250)
    assert frame[60:240, 110:290].min() > 240  # the white board
    assert frame[:, :90].max() < 200  # the belt


def test_belt_offset_moves_the_board_left():
    rng = np.random.default_rng(0)
    belt = belt_texture(STYLE, rng)
    _, a = render(STYLE, belt, 0.0, [Placement(sprite(), 300, 50)], Effects(), rng)
    _, b = render(STYLE, belt, 120.0, [Placement(sprite(), 300, 50)], Effects(), rng)
    assert a[0][1][0] - b[0][1][0] == 120


def test_partly_visible_board_is_clipped_and_tiny_slivers_are_not_labelled():
    rng = np.random.default_rng(0)
    belt = belt_texture(STYLE, rng)
    _, boxes = render(STYLE, belt, 0.0, [Placement(sprite(), -150, 50)], Effects(), rng)
    assert boxes[0][1].tolist() == [0, 50, 50, 250]
    sliver = -200 + int(MIN_VISIBLE * 200) - 2
    _, boxes = render(STYLE, belt, 0.0, [Placement(sprite(), sliver, 50)], Effects(), rng)
    assert boxes == []


def test_effects_change_pixels_but_not_boxes():
    rng = np.random.default_rng(0)
    belt = belt_texture(STYLE, rng)
    plain, a = render(STYLE, belt, 0.0, [Placement(sprite(), 100, 50)], Effects(), rng)
    noisy, b = render(
        STYLE, belt, 0.0, [Placement(sprite(), 100, 50)], Effects(gain=0.8, blur_px=5, noise_sigma=8, gradient=0.3), rng
    )
    assert a[0][1].tolist() == b[0][1].tolist()
    assert np.abs(plain.astype(int) - noisy.astype(int)).mean() > 5


def test_synth_line_dataset_is_reproducible_and_labelled(deeppcb_factory, tmp_path):
    src = deeppcb_factory(boards=12)
    style = LineStyle(width=320, height=192, board_px=140, seam_every_px=100)
    card = synth_line_dataset(src, tmp_path / "a", train=4, val=2, test=2, seed=7, style=style)
    synth_line_dataset(src, tmp_path / "b", train=4, val=2, test=2, seed=7, style=style)
    spec = load_data_yaml(tmp_path / "a" / "data.yaml")
    assert spec.names == ("board",)
    assert card["splits"]["train"]["boxes"] >= 4
    empty = 0
    for img in spec.images("train"):
        other = tmp_path / "b" / "images" / "train" / img.name
        assert img.read_bytes() == other.read_bytes()
        empty += not spec.labels_for(img).read_text()
    assert empty == card["splits"]["train"]["background_images"] < 4  # empty belt frames are the exception


def test_random_scenes_never_overlap_boards():
    rng = np.random.default_rng(0)
    style = LineStyle()
    belt = belt_texture(style, rng)
    gaps = []
    for _ in range(200):
        _, boxes = render(style, belt, 0.0, random_scene(style, [sprite()], rng), Effects(), rng)
        xs = sorted(b.tolist() for _, b in boxes)
        gaps += [b[0] - a[2] for a, b in zip(xs, xs[1:], strict=False)]
    assert min(gaps) >= 1  # never overlapping (an occluded board's label would be wrong)
    assert sum(g < 30 for g in gaps) > len(gaps) / 5  # and tight gaps are common
