"""Detection metrics: COCO-style AP, P/R/F1 at a confidence, and the DeepPCB F-score.

- AP uses COCO's 101-point interpolation of the precision envelope, so perfect
  predictions score exactly 1.0 (Ultralytics' trapezoid rule tops out at 0.995; its
  numbers in training logs are therefore a little lower than ours).
- Matching is greedy by IoU and one-to-one, same class only (as in Ultralytics' val).
- DeepPCB protocol: a detection is correct when IoU > 0.33 with an unmatched
  ground-truth box of the same type; F = 2PR / (P + R) at the chosen confidence.
- The DeepPCB F-score is also swept over confidences (as Ultralytics' F1-confidence curve):
  ``deeppcb.curve`` and ``deeppcb.best`` say where a model's F peaks, so a model card can tell
  the confidence at which it is best from the fixed one it is reported at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inspection.inference.nms import box_iou, one_class_per_place

IOU_THRESHOLDS = np.round(np.linspace(0.5, 0.95, 10), 2)
DEEPPCB_IOU = 0.33
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
F_CURVE_CONFS = np.round(np.arange(0.05, 0.951, 0.05), 2)


def match(
    pred_xyxy: np.ndarray,
    pred_cls: np.ndarray,
    gt_xyxy: np.ndarray,
    gt_cls: np.ndarray,
    thresholds: np.ndarray,
    strict: bool = False,
) -> np.ndarray:
    """(P, T) bool: prediction p is a true positive at threshold t.

    One ground truth matches at most one prediction; pairs are taken by highest IoU
    first. ``strict`` uses IoU > t instead of IoU >= t (the DeepPCB rule).
    """
    tp = np.zeros((len(pred_xyxy), len(thresholds)), dtype=bool)
    if not len(pred_xyxy) or not len(gt_xyxy):
        return tp
    iou = box_iou(gt_xyxy, pred_xyxy) * (gt_cls[:, None] == pred_cls[None, :])
    for ti, t in enumerate(thresholds):
        g, p = np.nonzero(iou > t if strict else iou >= t)
        if not g.size:
            continue
        order = np.argsort(-iou[g, p], kind="stable")
        g, p = g[order], p[order]
        _, first_p = np.unique(p, return_index=True)
        g, p = g[np.sort(first_p)], p[np.sort(first_p)]
        _, first_g = np.unique(g, return_index=True)
        tp[p[first_g], ti] = True
    return tp


def average_precision(tp_sorted: np.ndarray, n_gt: int) -> float:
    """COCO 101-point AP of predictions already sorted by descending confidence."""
    if n_gt == 0:
        return float("nan")
    if not tp_sorted.size:
        return 0.0
    tpc = np.cumsum(tp_sorted)
    fpc = np.cumsum(~tp_sorted)
    recall = tpc / n_gt
    precision = tpc / (tpc + fpc)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    q = np.where(idx < envelope.size, envelope[np.minimum(idx, envelope.size - 1)], 0.0)
    return float(q.mean())


def _deeppcb_counts(
    pred_xyxy: np.ndarray, pred_conf: np.ndarray, pred_cls: np.ndarray, gt_xyxy: np.ndarray, gt_cls: np.ndarray
) -> np.ndarray:
    """(len(F_CURVE_CONFS), 2): DeepPCB true positives and predictions of one image at each confidence
    (matched anew at each one: which boxes are kept changes the one-to-one matching)."""
    out = np.zeros((len(F_CURVE_CONFS), 2), dtype=np.int64)
    conf = np.asarray(pred_conf, dtype=np.float64)
    for i, c in enumerate(F_CURVE_CONFS):
        keep = conf >= c
        if not keep.any():
            continue
        tp = match(pred_xyxy[keep], pred_cls[keep], gt_xyxy, gt_cls, np.array([DEEPPCB_IOU]), strict=True)
        out[i] = (int(tp.sum()), int(keep.sum()))
    return out


def _prf(tp: int, n_pred: int, n_gt: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gt if n_gt else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


@dataclass
class DetectionMetrics:
    """Accumulates per-image matches, then reports every metric at once."""

    class_names: tuple[str, ...]
    conf: float = 0.25
    merge_iou: float = 1.0  # the served one-label-per-place pass, applied to what the DeepPCB F counts (not AP)
    _tp: list[np.ndarray] = field(default_factory=list)  # (P, 10) per image
    _tp_pcb: list[np.ndarray] = field(default_factory=list)  # (P,) per image
    _served: list[np.ndarray] = field(default_factory=list)  # (P,) per image: left by one_class_per_place
    _conf: list[np.ndarray] = field(default_factory=list)
    _pcls: list[np.ndarray] = field(default_factory=list)
    _gcls: list[np.ndarray] = field(default_factory=list)
    _pcb_curve: list[np.ndarray] = field(
        default_factory=list
    )  # (C, 2) per image: [TP, predictions] at each F_CURVE_CONFS
    images: int = 0

    def add(
        self,
        pred_xyxy: np.ndarray,
        pred_conf: np.ndarray,
        pred_cls: np.ndarray,
        gt_xyxy: np.ndarray,
        gt_cls: np.ndarray,
    ) -> None:
        """Add one image. Predictions should include low-confidence boxes (for AP)."""
        pred_cls = np.asarray(pred_cls, dtype=np.int64)
        gt_cls = np.asarray(gt_cls, dtype=np.int64)
        self._tp.append(match(pred_xyxy, pred_cls, gt_xyxy, gt_cls, IOU_THRESHOLDS))
        served = one_class_per_place(pred_xyxy, np.asarray(pred_conf), self.merge_iou)
        keep = served[pred_conf[served] >= self.conf]
        pcb = np.zeros(len(pred_xyxy), dtype=bool)
        pcb[keep] = match(pred_xyxy[keep], pred_cls[keep], gt_xyxy, gt_cls, np.array([DEEPPCB_IOU]), strict=True)[:, 0]
        self._tp_pcb.append(pcb)
        kept = np.zeros(len(pred_xyxy), dtype=bool)
        kept[served] = True
        self._served.append(kept)
        self._pcb_curve.append(_deeppcb_counts(pred_xyxy[served], pred_conf[served], pred_cls[served], gt_xyxy, gt_cls))
        self._conf.append(np.asarray(pred_conf, dtype=np.float64))
        self._pcls.append(pred_cls)
        self._gcls.append(gt_cls)
        self.images += 1

    def _deeppcb_curve(self, n_gt: int) -> dict[str, Any]:
        """The DeepPCB F-score at each of F_CURVE_CONFS, and the confidence where it peaks."""
        counts = np.sum(self._pcb_curve, axis=0) if self._pcb_curve else np.zeros((len(F_CURVE_CONFS), 2), np.int64)
        curve = []
        for c, (tp, n_pred) in zip(F_CURVE_CONFS, counts, strict=True):
            p, r, f = _prf(int(tp), int(n_pred), n_gt)
            curve.append({"conf": float(c), "precision": p, "recall": r, "fscore": f})
        best = max(curve, key=lambda row: (row["fscore"], -row["conf"]))
        return {"curve": curve, "best": best}

    def result(self) -> dict[str, Any]:
        nc = len(self.class_names)
        tp = np.concatenate(self._tp) if self._tp else np.zeros((0, len(IOU_THRESHOLDS)), bool)
        tp_pcb = np.concatenate(self._tp_pcb) if self._tp_pcb else np.zeros(0, bool)
        served = np.concatenate(self._served) if self._served else np.zeros(0, bool)
        conf = np.concatenate(self._conf) if self._conf else np.zeros(0)
        pcls = np.concatenate(self._pcls) if self._pcls else np.zeros(0, np.int64)
        gcls = np.concatenate(self._gcls) if self._gcls else np.zeros(0, np.int64)
        order = np.argsort(-conf, kind="stable")
        tp, tp_pcb, served, conf, pcls = tp[order], tp_pcb[order], served[order], conf[order], pcls[order]
        ap = np.full((nc, len(IOU_THRESHOLDS)), np.nan)
        per_class: dict[str, dict[str, float]] = {}
        at_conf = conf >= self.conf
        for c in range(nc):
            sel = pcls == c
            n_gt = int((gcls == c).sum())
            for ti in range(len(IOU_THRESHOLDS)):
                ap[c, ti] = average_precision(tp[sel, ti], n_gt)
            p, r, f = _prf(int(tp[sel & at_conf, 0].sum()), int((sel & at_conf).sum()), n_gt)
            per_class[self.class_names[c]] = {
                "ap50": ap[c, 0],
                "ap50_95": float(np.nanmean(ap[c])) if n_gt else float("nan"),
                "precision": p,
                "recall": r,
                "f1": f,
                "instances": n_gt,
            }
        has_gt = ~np.isnan(ap[:, 0])
        p, r, f = _prf(int(tp[at_conf, 0].sum()), int(at_conf.sum()), int(gcls.size))
        pp, pr, pf = _prf(int(tp_pcb[at_conf].sum()), int((served & at_conf).sum()), int(gcls.size))
        return {
            "images": self.images,
            "instances": int(gcls.size),
            "conf": self.conf,
            "map50": float(ap[has_gt, 0].mean()) if has_gt.any() else 0.0,
            "map50_95": float(ap[has_gt].mean()) if has_gt.any() else 0.0,
            "precision": p,
            "recall": r,
            "f1": f,
            "deeppcb": {
                "precision": pp,
                "recall": pr,
                "fscore": pf,
                "iou": DEEPPCB_IOU,
                "merge_iou": self.merge_iou,
                **self._deeppcb_curve(int(gcls.size)),
            },
            "per_class": per_class,
        }
