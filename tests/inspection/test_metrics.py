"""Known answers for the metric code, computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from inspection.ml.metrics import DetectionMetrics, average_precision, match

NAMES = ("open", "short")


def run(preds, gts, conf=0.25):
    """preds: [(xyxy, conf, cls)], gts: [(xyxy, cls)] for a single image."""
    m = DetectionMetrics(NAMES, conf=conf)
    p = np.array([x for x, _, _ in preds], np.float32).reshape(-1, 4)
    m.add(
        p,
        np.array([c for _, c, _ in preds], np.float32),
        np.array([k for _, _, k in preds]),
        np.array([x for x, _ in gts], np.float32).reshape(-1, 4),
        np.array([k for _, k in gts]),
    )
    return m.result()


def test_perfect_predictions_score_one():
    gts = [([10, 10, 50, 50], 0), ([100, 100, 140, 130], 1), ([200, 10, 230, 60], 0)]
    r = run([(b, 0.9, c) for b, c in gts], gts)
    assert r["map50"] == 1.0 and r["map50_95"] == 1.0
    assert r["precision"] == r["recall"] == r["f1"] == 1.0
    assert r["deeppcb"]["fscore"] == 1.0


def test_shifted_box_passes_low_iou_thresholds_only():
    # IoU of [0,0,10,10] and [2,0,12,10] = 80 / 120 = 0.667: TP at 0.50..0.65, FP at 0.70..0.95
    r = run([([2, 0, 12, 10], 0.9, 0)], [([0, 0, 10, 10], 0)])
    assert r["map50"] == 1.0
    assert r["map50_95"] == pytest.approx(0.4)


def test_missing_box_halves_recall():
    gts = [([0, 0, 10, 10], 0), ([50, 50, 60, 60], 0)]
    r = run([([0, 0, 10, 10], 0.9, 0)], gts)
    # precision 1 for recall 0..0.5: 51 of the 101 recall points
    assert r["map50"] == pytest.approx(51 / 101)
    assert r["recall"] == 0.5 and r["precision"] == 1.0
    assert r["f1"] == pytest.approx(2 / 3)


def test_extra_box_ranked_below_the_true_one_keeps_ap():
    gts = [([0, 0, 10, 10], 0)]
    r = run([([0, 0, 10, 10], 0.9, 0), ([50, 50, 60, 60], 0.8, 0)], gts)
    assert r["map50"] == 1.0
    assert r["precision"] == 0.5 and r["recall"] == 1.0


def test_extra_box_ranked_above_the_true_one_halves_ap():
    gts = [([0, 0, 10, 10], 0)]
    r = run([([0, 0, 10, 10], 0.8, 0), ([50, 50, 60, 60], 0.9, 0)], gts)
    assert r["map50"] == pytest.approx(0.5)


def test_wrong_class_is_a_miss():
    r = run([([0, 0, 10, 10], 0.9, 1)], [([0, 0, 10, 10], 0)])
    assert r["map50"] == 0.0
    assert r["deeppcb"]["fscore"] == 0.0


def test_boxes_below_conf_count_for_ap_but_not_for_prf():
    r = run([([0, 0, 10, 10], 0.1, 0)], [([0, 0, 10, 10], 0)], conf=0.25)
    assert r["map50"] == 1.0
    assert r["precision"] == 0.0 and r["recall"] == 0.0


def test_deeppcb_counts_iou_above_033_only():
    # [0,0,10,10] vs [5,0,15,10]: IoU 50/150 = 0.333.. (> 0.33 counts); vs [6,0,16,10]: 40/160 = 0.25
    r = run([([5, 0, 15, 10], 0.9, 0)], [([0, 0, 10, 10], 0)])
    assert r["deeppcb"]["fscore"] == 1.0 and r["map50"] == 0.0
    r = run([([6, 0, 16, 10], 0.9, 0)], [([0, 0, 10, 10], 0)])
    assert r["deeppcb"]["fscore"] == 0.0


def test_one_ground_truth_matches_one_prediction():
    tp = match(
        np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32),
        np.array([0, 0]),
        np.array([[0, 0, 10, 10]], np.float32),
        np.array([0]),
        np.array([0.5]),
    )
    assert tp[:, 0].sum() == 1


def test_class_without_ground_truth_is_left_out_of_the_mean():
    r = run([([0, 0, 10, 10], 0.9, 0)], [([0, 0, 10, 10], 0)])
    assert np.isnan(r["per_class"]["short"]["ap50"])
    assert r["map50"] == 1.0


def test_average_precision_edge_cases():
    assert average_precision(np.array([], bool), 3) == 0.0
    assert np.isnan(average_precision(np.array([True]), 0))


def test_deeppcb_f_is_swept_over_confidence_and_peaks_where_false_boxes_drop_out():
    # one true box at 0.9 and one false box at 0.3: F is 2/3 up to conf 0.30, then 1.0 from 0.35 on
    r = run([([0, 0, 10, 10], 0.9, 0), ([50, 50, 60, 60], 0.3, 0)], [([0, 0, 10, 10], 0)])
    curve = {row["conf"]: row["fscore"] for row in r["deeppcb"]["curve"]}
    assert curve[0.3] == pytest.approx(2 / 3) and curve[0.35] == 1.0 and curve[0.95] == 0.0
    assert r["deeppcb"]["fscore"] == pytest.approx(2 / 3)  # at the fixed conf 0.25
    assert r["deeppcb"]["best"] == {"conf": 0.35, "precision": 1.0, "recall": 1.0, "fscore": 1.0}


def test_deeppcb_f_counts_one_label_per_place_when_merged_but_ap_ranks_every_box():
    # a defect found as open (0.9) and, in the same place, as short (0.6): two predictions, one TP
    gts = [([10, 10, 50, 50], 0)]
    preds = [([10, 10, 50, 50], 0.9, 0), ([11, 10, 50, 50], 0.6, 1)]
    plain = run(preds, gts)
    m = DetectionMetrics(NAMES, conf=0.25, merge_iou=0.5)
    m.add(
        np.array([x for x, _, _ in preds], np.float32),
        np.array([c for _, c, _ in preds], np.float32),
        np.array([k for _, _, k in preds]),
        np.array([x for x, _ in gts], np.float32),
        np.array([k for _, k in gts]),
    )
    merged = m.result()
    assert plain["deeppcb"]["precision"] == 0.5 and merged["deeppcb"]["precision"] == 1.0
    assert merged["deeppcb"]["fscore"] == 1.0 and merged["deeppcb"]["merge_iou"] == 0.5
    assert merged["map50"] == plain["map50"]  # AP is scored on the class-aware NMS's boxes
