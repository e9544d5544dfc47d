"""Board tracking: the ``Tracker`` interface and a compact ByteTrack in numpy.

Why not the ``trackers`` package (Roboflow's maintained ByteTrack): it fits the API
(stable ids, no torch import), but neither it nor its dependencies (``supervision``,
``scipy``) are in ``requirements.lock``; they are only present in one local virtual
environment, so a fresh environment built by ``scripts/setup.sh`` would fail to import
this module. It would also cost ~0.7 s of imports and an ``sv.Detections`` conversion per
frame, and only reports matched detections (lost-but-buffered tracks are internal).

So this module is a compact ByteTrack (Zhang et al., 2022) that needs numpy only:

1. every track is predicted to the frame time with a constant-velocity translation
   (vx, vy in px/s, so any frame rate works; boards on a conveyor translate). Per axis
   the velocity is measured on the box edge that moved more, because a board cut by the
   frame edge has one box edge pinned to the border; the box and the velocity are
   smoothed with alpha-beta style gains instead of ByteTrack's Kalman filter;
2. stage 1: confirmed and lost tracks are matched to high-score detections by IoU with
   an optimal assignment (Hungarian, ``linear_assignment`` below);
3. stage 2: tracks still unmatched (and seen last frame) are matched to low-score
   detections, which keeps a board's track alive when the detector is unsure;
4. unconfirmed tracks (one sighting) are matched to the remaining high-score
   detections; a track gets its id once seen ``min_hits`` frames in a row;
5. remaining high-score detections start unconfirmed tracks; lost tracks are kept for
   ``track_buffer_s`` seconds so a missed detection or two does not change the id.

Ids start at 1, are assigned at confirmation (no gaps from one-frame false positives)
and never reused by one ``ByteTrack`` instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from inspection.core.detections import Detections
from inspection.core.errors import TrackingError
from inspection.inference.nms import box_iou

_GATED = 1e4  # assignment cost of a pair below the IoU gate: never preferred to a valid pair


@dataclass(frozen=True, eq=False)
class Tracks:
    """Confirmed tracks matched to a detection in one frame, one numpy array per field."""

    xyxy: np.ndarray  # (N, 4) float32: the matched detection box, frame pixels
    track_id: np.ndarray  # (N,) int64, stable per board, >= 1
    confidence: np.ndarray  # (N,) float32: the matched detection's confidence
    lost_id: np.ndarray  # (M,) int64: confirmed tracks not seen this frame but still kept (buffer)

    @classmethod
    def empty(cls) -> Tracks:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.track_id.shape[0])

    @property
    def alive_id(self) -> np.ndarray:
        """Ids of every track the tracker still keeps: seen now or lost within the buffer."""
        return np.concatenate([self.track_id, self.lost_id])


class Tracker(Protocol):
    """One interface for every tracker: detections of one frame at time ``t`` in, tracks out."""

    def update(self, detections: Detections, t: float) -> Tracks: ...


class ByteTrackConfig(BaseModel):
    """Settings of the ByteTrack board tracker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["bytetrack"] = Field("bytetrack", description="Tracker backend; only ByteTrack for now.")
    high_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Detections at or above this confidence are matched first (stage 1) and may start tracks.",
    )
    low_threshold: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Detections below this confidence are ignored; "
        "those in [low, high) only extend existing tracks (stage 2).",
    )
    new_track_threshold: float = Field(
        0.6, ge=0, le=1, description="Minimum confidence of an unmatched detection to start a new track."
    )
    match_iou: float = Field(
        0.2,
        gt=0,
        le=1,
        description="Minimum IoU between a track's predicted box and a high-score detection to match them (stage 1).",
    )
    low_match_iou: float = Field(0.5, gt=0, le=1, description="Minimum IoU to match a low-score detection (stage 2).")
    unconfirmed_match_iou: float = Field(
        0.3, gt=0, le=1, description="Minimum IoU to match a detection to a track seen only once so far."
    )
    min_hits: int = Field(
        2, ge=1, description="Consecutive frames a new track must be seen before it is confirmed and gets an id."
    )
    track_buffer_s: float = Field(
        1.0,
        ge=0,
        description="Seconds a confirmed track is kept after its last "
        "detection before it is dropped (the board has left).",
    )
    position_gain: float = Field(
        0.7,
        gt=0,
        le=1,
        description="Alpha of the alpha-beta filter: how much a "
        "detection corrects the predicted box (1 = trust the detection fully).",
    )
    velocity_gain: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Weight of the newest measured velocity in the "
        "smoothed velocity (1 = use the last displacement only).",
    )


def linear_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of a rectangular cost matrix (Hungarian, O(n^2 m)).

    Returns ``(rows, cols)`` with ``min(n, m)`` pairs, rows ascending, like
    ``scipy.optimize.linear_sum_assignment``.
    """
    cost = np.asarray(cost, np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be 2-D, got shape {cost.shape}")
    if cost.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    transposed = cost.shape[0] > cost.shape[1]
    a = cost.T if transposed else cost
    col_of_row = _hungarian(a)
    rows = np.arange(a.shape[0], dtype=np.int64)
    cols = col_of_row.astype(np.int64)
    if transposed:
        rows, cols = cols, rows
        order = np.argsort(rows)
        rows, cols = rows[order], cols[order]
    return rows, cols


def _hungarian(a: np.ndarray) -> np.ndarray:
    """Column assigned to each row of ``a`` (n <= m), by shortest augmenting paths with potentials."""
    n, m = a.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    p = np.zeros(m + 1, np.int64)  # p[j]: row (1-based) assigned to column j; column 0 is virtual
    way = np.zeros(m + 1, np.int64)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used
            free[0] = False
            reduced = a[i0 - 1] - u[i0] - v[1:]
            better = free[1:] & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv, np.inf)
            j1 = int(np.argmin(candidates))
            delta = candidates[j1]
            u[p[used]] += delta
            v[used] -= delta
            minv[free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = int(way[j0])
            p[j0] = p[j1]
            j0 = j1
    col_of_row = np.empty(n, np.int64)
    assigned = np.nonzero(p[1:])[0]
    col_of_row[p[1:][assigned] - 1] = assigned
    return col_of_row


def match(boxes_a: np.ndarray, boxes_b: np.ndarray, min_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Optimal IoU matching: index pairs ``(ia, ib)`` with IoU >= ``min_iou``, maximising total IoU."""
    if len(boxes_a) == 0 or len(boxes_b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    iou = box_iou(boxes_a.astype(np.float64), boxes_b.astype(np.float64))
    cost = np.where(iou >= min_iou, 1.0 - iou, _GATED)
    rows, cols = linear_assignment(cost)
    ok = iou[rows, cols] >= min_iou
    return rows[ok], cols[ok]


@dataclass
class _Track:
    """Internal, mutable state of one track (never leaves the tracker)."""

    box: np.ndarray  # (4,) float64 filtered box at time t_box
    last_z: np.ndarray  # (4,) last detection box matched
    velocity: np.ndarray  # (2,) px/s translation (vx, vy)
    t_box: float
    hits: int  # consecutive frames matched
    seen: int = 1  # frames matched in all
    track_id: int = 0  # 0 until confirmed
    missed: bool = False  # not matched in the last update

    def predict(self, t: float) -> np.ndarray:
        return self.box + np.tile(self.velocity, 2) * (t - self.t_box)


def translation(displacement: np.ndarray) -> np.ndarray:
    """(dx, dy) of a box from the (4,) displacement of its edges.

    Per axis, the edge that moved more wins: a box cut by the frame edge has one edge
    pinned to the border while the board moves, so the pinned edge says nothing.
    """
    dx = displacement[0] if abs(displacement[0]) >= abs(displacement[2]) else displacement[2]
    dy = displacement[1] if abs(displacement[1]) >= abs(displacement[3]) else displacement[3]
    return np.array([dx, dy])


class ByteTrack:
    """Compact ByteTrack; see the module docstring. Stateful; never changes its inputs."""

    def __init__(self, config: ByteTrackConfig | None = None) -> None:
        self.config = config or ByteTrackConfig()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._t_last: float | None = None

    def update(self, detections: Detections, t: float) -> Tracks:
        """Associate one frame's detections (time ``t`` in seconds, non-decreasing) with the tracks."""
        if self._t_last is not None and t < self._t_last:
            raise TrackingError(f"tracker time went backwards: {t} < {self._t_last}")
        self._t_last = t
        cfg = self.config
        boxes = detections.xyxy.astype(np.float64)
        conf = detections.confidence.astype(np.float64)
        high = np.nonzero(conf >= cfg.high_threshold)[0]
        low = np.nonzero((conf >= cfg.low_threshold) & (conf < cfg.high_threshold))[0]
        confirmed = [tr for tr in self._tracks if tr.track_id]
        unconfirmed = [tr for tr in self._tracks if not tr.track_id]
        matched: dict[int, int] = {}  # id(track) -> detection index

        rest_tracks, rest_high = self._associate(confirmed, high, boxes, t, cfg.match_iou, matched)
        recent = [tr for tr in rest_tracks if not tr.missed]
        self._associate(recent, low, boxes, t, cfg.low_match_iou, matched)
        _, new_high = self._associate(unconfirmed, rest_high, boxes, t, cfg.unconfirmed_match_iou, matched)

        for tr in self._tracks:
            det = matched.get(id(tr))
            if det is None:
                tr.missed, tr.hits = True, 0
            else:
                self._correct(tr, boxes[det], t)
        self._tracks = [
            tr for tr in self._tracks if tr.track_id and t - tr.t_box <= cfg.track_buffer_s or id(tr) in matched
        ]
        for det in new_high:
            if conf[det] >= cfg.new_track_threshold:
                tr = _Track(boxes[det].copy(), boxes[det].copy(), np.zeros(2), t, hits=1)
                self._tracks.append(tr)
                matched[id(tr)] = int(det)
                if cfg.min_hits <= 1:
                    self._confirm(tr)
        out = [(tr, matched[id(tr)]) for tr in self._tracks if id(tr) in matched and tr.track_id]
        return self._tracks_value(out, detections)

    def _associate(
        self,
        tracks: list[_Track],
        dets: np.ndarray,
        boxes: np.ndarray,
        t: float,
        min_iou: float,
        matched: dict[int, int],
    ) -> tuple[list[_Track], np.ndarray]:
        """Match ``tracks`` to detections ``dets``; record pairs; return the unmatched of each."""
        if not tracks or dets.size == 0:
            return tracks, dets
        predicted = np.stack([tr.predict(t) for tr in tracks])
        rows, cols = match(predicted, boxes[dets], min_iou)
        for r, c in zip(rows, cols, strict=True):
            matched[id(tracks[int(r)])] = int(dets[c])
        taken_rows, taken_cols = set(rows.tolist()), set(cols.tolist())
        rest_tracks = [tr for k, tr in enumerate(tracks) if k not in taken_rows]
        rest_dets = np.asarray([d for k, d in enumerate(dets) if k not in taken_cols], np.int64)
        return rest_tracks, rest_dets

    def _correct(self, tr: _Track, z: np.ndarray, t: float) -> None:
        """Alpha-beta style update of a matched track with the detection box ``z`` at time ``t``."""
        dt = t - tr.t_box
        cfg = self.config
        if dt <= 0:
            tr.box = z.copy()
        else:
            measured = translation(z - tr.last_z) / dt
            gain = 1.0 if tr.seen == 1 else cfg.velocity_gain  # second sighting: first velocity estimate
            pred = tr.predict(t)
            tr.box = pred + cfg.position_gain * (z - pred)
            tr.velocity = tr.velocity + gain * (measured - tr.velocity)
        tr.last_z = z.copy()
        tr.t_box, tr.missed = t, False
        tr.hits += 1
        tr.seen += 1
        if not tr.track_id and tr.hits >= cfg.min_hits:
            self._confirm(tr)

    def _confirm(self, tr: _Track) -> None:
        tr.track_id = self._next_id
        self._next_id += 1

    def _tracks_value(self, out: list[tuple[_Track, int]], detections: Detections) -> Tracks:
        out.sort(key=lambda pair: pair[0].track_id)
        idx = np.asarray([d for _, d in out], np.int64)
        matched_ids = {tr.track_id for tr, _ in out}
        lost = sorted(tr.track_id for tr in self._tracks if tr.track_id and tr.track_id not in matched_ids)
        return Tracks(
            detections.xyxy[idx].astype(np.float32),
            np.asarray([tr.track_id for tr, _ in out], np.int64),
            detections.confidence[idx].astype(np.float32),
            np.asarray(lost, np.int64),
        )


def build_tracker(config: ByteTrackConfig) -> Tracker:
    """The tracker backend named by ``config.type``."""
    return ByteTrack(config)
