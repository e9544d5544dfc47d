"""Letterbox geometry and NMS against a plain reference implementation."""

from __future__ import annotations

import numpy as np
import pytest

from inspection.inference.nms import box_iou, decode, nms
from inspection.inference.preprocess import as_bgr, letterbox, to_tensor


def test_letterbox_wide_frame_pads_top_and_bottom():
    img = np.full((720, 1280, 3), 200, np.uint8)
    out, lb = letterbox(img, (640, 640))
    assert out.shape == (640, 640, 3)
    assert lb.scale == 0.5 and lb.pad_x == 0 and lb.pad_y == 140
    assert (out[:140] == 114).all() and (out[140:500] == 200).all() and (out[500:] == 114).all()


def test_letterbox_maps_boxes_back_to_source_pixels():
    img = np.zeros((480, 960, 3), np.uint8)
    _, lb = letterbox(img, (320, 320))
    model_box = np.array([[10.0, 90.0, 110.0, 130.0]], np.float32)  # in 320x320 input pixels
    src = lb.to_source(model_box)
    # scale 1/3, pad_y (320 - 160) / 2 = 80
    assert src[0].tolist() == pytest.approx([30.0, 30.0, 330.0, 150.0])


def test_to_tensor_is_rgb_nchw_unit_range():
    img = np.zeros((2, 2, 3), np.uint8)
    img[..., 0] = 255  # blue in BGR
    t = to_tensor([img, img])
    assert t.shape == (2, 3, 2, 2) and t.dtype == np.float32
    assert t[0, 2].max() == 1.0 and t[0, 0].max() == 0.0  # blue ends in the last (B of RGB) channel


def test_as_bgr_accepts_grey():
    assert as_bgr(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)


def reference_nms(boxes, scores, thr):
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        order = [j for j in order if box_iou(boxes[i : i + 1], boxes[j : j + 1])[0, 0] <= thr]
    return keep


def test_nms_matches_reference_on_random_boxes():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 200, (300, 2))
    wh = rng.uniform(5, 60, (300, 2))
    boxes = np.hstack([xy, xy + wh]).astype(np.float32)
    scores = rng.uniform(0, 1, 300).astype(np.float32)
    assert nms(boxes, scores, 0.45).tolist() == reference_nms(boxes, scores, 0.45)


def test_decode_is_class_aware_and_thresholded():
    # two identical boxes of different classes both survive; a low score is dropped
    raw = np.zeros((4 + 2, 3), np.float32)
    raw[:4, 0] = raw[:4, 1] = [50, 50, 20, 20]
    raw[:4, 2] = [10, 10, 4, 4]
    raw[4, 0], raw[5, 1], raw[4, 2] = 0.9, 0.8, 0.1
    xyxy, score, cls = decode(raw, conf=0.25, iou=0.45)
    assert sorted(cls.tolist()) == [0, 1]
    assert xyxy[0].tolist() == [40, 40, 60, 60]
    assert score.tolist() == pytest.approx([0.9, 0.8])


def test_merge_iou_keeps_one_label_per_place():
    # the same two boxes of different classes: with merge_iou the higher-scored label alone is served;
    # a box of the other class elsewhere (IoU 0 with it) stays
    raw = np.zeros((4 + 2, 3), np.float32)
    raw[:4, 0] = raw[:4, 1] = [50, 50, 20, 20]
    raw[:4, 2] = [150, 150, 20, 20]
    raw[4, 0], raw[5, 1], raw[5, 2] = 0.8, 0.9, 0.7
    xyxy, score, cls = decode(raw, conf=0.25, iou=0.45, merge_iou=0.5)
    assert cls.tolist() == [1, 1]
    assert score.tolist() == pytest.approx([0.9, 0.7])
    assert xyxy[1].tolist() == [140, 140, 160, 160]
    assert len(decode(raw, conf=0.25, iou=0.45, merge_iou=1.0)[0]) == 3  # off: all three
