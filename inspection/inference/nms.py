"""Decode YOLOv8 raw output and run class-aware non-maximum suppression in numpy."""

from __future__ import annotations

import numpy as np

MAX_WH = 7680  # class offset for class-aware NMS, as in Ultralytics
MAX_CANDIDATES = 30000


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes."""
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clip(0).prod(axis=2)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first. Each round is one vectorised step."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = (np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])).clip(0)
        h = (np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])).clip(0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


DEFECT_MERGE_IOU = 0.5  # one defect, one box: what the defect model serves (measured on the val split)


def one_class_per_place(xyxy: np.ndarray, score: np.ndarray, merge_iou: float) -> np.ndarray:
    """Indices (highest score first) left after class-aware NMS is followed by a class-agnostic pass:
    a box that overlaps a higher-scored box of any class by more than ``merge_iou`` is dropped, so one
    defect gets one label, not two (an open also scored as a mousebite). ``merge_iou`` 1.0: off."""
    if merge_iou >= 1.0 or len(xyxy) < 2:
        return np.argsort(-score, kind="stable")
    return nms(xyxy, score, merge_iou)


def decode(
    raw: np.ndarray, conf: float, iou: float, max_det: int = 300, merge_iou: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's YOLOv8 output (4 + nc, anchors) -> kept xyxy, scores, class ids.

    Class-aware NMS at ``iou``, then ``one_class_per_place`` at ``merge_iou``. Boxes stay in
    model-input pixels; the caller maps them back through the letterbox.
    """
    scores_all = raw[4:]
    class_id = scores_all.argmax(axis=0)
    score = scores_all[class_id, np.arange(scores_all.shape[1])]
    mask = score > conf
    if not mask.any():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    xywh = raw[:4, mask].T
    score, class_id = score[mask], class_id[mask]
    if score.size > MAX_CANDIDATES:
        top = np.argpartition(-score, MAX_CANDIDATES)[:MAX_CANDIDATES]
        xywh, score, class_id = xywh[top], score[top], class_id[top]
    xyxy = np.empty_like(xywh)
    half = xywh[:, 2:] / 2
    xyxy[:, :2] = xywh[:, :2] - half
    xyxy[:, 2:] = xywh[:, :2] + half
    keep = nms(xyxy + (class_id[:, None] * MAX_WH), score, iou)
    keep = keep[one_class_per_place(xyxy[keep], score[keep], merge_iou)][:max_det]
    return xyxy[keep].astype(np.float32), score[keep].astype(np.float32), class_id[keep].astype(np.int64)
