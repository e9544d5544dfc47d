"""Register a board crop to its golden image, with a quality score.

The part model gives an axis-aligned box around the board inside the crop. That box
seeds a homography (box corners -> golden corners), which two methods refine:

- ``ecc`` (default): OpenCV's ECC (enhanced correlation coefficient) maximisation of a
  full homography at ``work_px`` (160 px: 4x below a 640 px golden), optionally refined
  at ``refine_px``. It needs the seed within a few percent of the truth, which the part
  box gives for boards within about +-5 degrees of upright. Measured on the simulated
  line's boards (bench/bench_reference.py): every board registered; one level at 160 px
  took about a third of two levels (128 then 192 px) with the same residual difference.
- ``features``: ORB keypoints of board and golden, ratio-tested matches, a RANSAC
  homography (any rotation), then the same ECC pass to polish it. Slower, and it lost
  about one board in five of the simulated line, so it is the option, not the default.

The board is then warped into the golden's pixels (so boxes found on it are golden
pixels) and its brightness is matched to the golden's (gain and offset from the means and
standard deviations). ECC works on the golden framed by a few pixels of the conveyor's grey
(the median around the board box), so a board's outline registers as well as its copper:
a board that is one copper plane with a hole (DeepPCB 77000053) aligns by its edges.
The score is the normalised correlation of the registered board and the golden at the
working size, outside the recipe's ignore mask (1 = identical, insensitive to brightness);
for a golden without texture, where correlation means nothing, 1 - mean |difference| / 128.
A board whose alignment throws, leaves the image, or scores below ``min_score`` is not
aligned: the engine never passes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from inspection.reference.planes import gray
from inspection.reference.recipes import AlignSettings, Golden

_ECC_EPS = 1e-4
ALIGNMENT_FAILED = "alignment failed"  # heads the verdict reason of a board that could not be aligned


@dataclass(frozen=True, eq=False)
class Alignment:
    """The result of registering one board crop to its golden image."""

    ok: bool
    score: float  # normalised correlation at the fine level (1 = identical); nan when it failed early
    homography: np.ndarray  # (3, 3) float64: crop pixels -> golden pixels (identity when failed early)
    aligned: np.ndarray | None  # HxW uint8 board in golden pixels, brightness matched; None when failed
    reason: str = ""  # why it failed, human readable

    def failure(self) -> str:
        """The verdict reason of a failed alignment."""
        score = "n/a" if np.isnan(self.score) else f"{self.score:.2f}"
        head = f"{ALIGNMENT_FAILED} (score {score})"
        return f"{head}: {self.reason}" if self.reason else head


def _scale(h: np.ndarray, s: float) -> np.ndarray:
    """The same homography expressed in pixel units scaled by ``s`` on both sides."""
    d = np.diag([s, s, 1.0])
    out: np.ndarray = d @ h @ np.linalg.inv(d)
    return out / out[2, 2]


def seed_homography(board_xyxy: np.ndarray | tuple[float, ...], golden_size: tuple[int, int]) -> np.ndarray:
    """Crop pixels -> golden pixels mapping the board box onto the whole golden image."""
    x1, y1, x2, y2 = (float(v) for v in board_xyxy[:4])
    w, h = golden_size
    sx, sy = w / max(x2 - x1, 1.0), h / max(y2 - y1, 1.0)
    return np.array([[sx, 0.0, -x1 * sx], [0.0, sy, -y1 * sy], [0.0, 0.0, 1.0]])


def _resize(image: np.ndarray, s: float) -> np.ndarray:
    if s == 1.0:
        return image
    size = (max(8, round(image.shape[1] * s)), max(8, round(image.shape[0] * s)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


_GOLDEN_LEVELS: dict[tuple[str, float, int, int], np.ndarray] = {}
FLAT_STD = 6.0  # a golden whose grey levels spread less than this (at the working size) has no texture


def _golden_level(golden: Golden, s: float, pad: int = 0, surround: int = 0) -> np.ndarray:
    """The golden at scale ``s`` as float32, framed by ``pad`` pixels of ``surround`` grey; cached.

    The frame stands for what lies around the board in the crop (the conveyor), so the board's
    outline registers too: a board with little texture (a copper plane) still aligns by its edges.
    """
    key = (golden.sha256, round(s, 4), pad, surround)
    hit = _GOLDEN_LEVELS.get(key)
    if hit is None:
        if len(_GOLDEN_LEVELS) > 512:
            _GOLDEN_LEVELS.clear()
        level = _resize(golden.image, s)
        if pad:
            level = cv2.copyMakeBorder(level, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=surround)
        hit = _GOLDEN_LEVELS[key] = level.astype(np.float32)
    return hit


def _surround(board: np.ndarray, board_xyxy: np.ndarray | tuple[float, ...]) -> int:
    """Median grey of the crop outside the board box (the conveyor around it), in steps of 16."""
    x1, y1, x2, y2 = (int(v) for v in board_xyxy[:4])
    mask = np.ones(board.shape[:2], bool)
    mask[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = False
    ring = board[mask]
    return int(np.median(ring)) // 16 * 16 if ring.size else 0


def _translate(dx: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dx], [0.0, 0.0, 1.0]])


def _ecc(
    golden: np.ndarray,
    board: np.ndarray,
    crop_to_golden: np.ndarray,
    s: float,
    iterations: int,
    mask: np.ndarray | None,
    pad: int = 0,
) -> tuple[np.ndarray, float]:
    """Refine ``crop_to_golden`` by ECC; ``golden`` (framed by ``pad`` px) and ``board`` are at scale ``s``."""
    m = None
    if mask is not None:
        m = _resize(mask, (golden.shape[1] - 2 * pad) / mask.shape[1])
        m = cv2.copyMakeBorder(m, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255) if pad else m
    shift = _translate(pad / s)  # golden pixels -> framed golden pixels (full resolution)
    warp = np.linalg.inv(_scale(shift @ crop_to_golden, s)).astype(np.float32)  # golden -> crop (ECC's convention)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, _ECC_EPS)
    rho, found = cv2.findTransformECC(golden, board.astype(np.float32), warp, cv2.MOTION_HOMOGRAPHY, criteria, m, 3)  # type: ignore[arg-type]
    h = np.linalg.inv(np.asarray(found, np.float64))
    framed = _scale(h / h[2, 2], 1.0 / s)
    out = np.linalg.inv(shift) @ framed
    return out / out[2, 2], float(rho)


def board_score(board: np.ndarray, golden: Golden, hom: np.ndarray, s: float, keep: np.ndarray | None) -> float:
    """How well the registered board (``board``: the crop at scale ``s``) matches its golden: the normalised
    correlation of the two (1 = identical, insensitive to brightness); for a golden without texture, where
    correlation means nothing, 1 - mean |difference| / 128 after matching brightness."""
    g = _golden_level(golden, s)
    h, w = g.shape
    warped = cv2.warpPerspective(
        board, _scale(hom, s), (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    ).astype(np.float32)
    valid = np.ones((h, w), bool) if keep is None else _resize(keep, w / keep.shape[1]) > 0
    b, gg = warped[valid], g[valid]
    if b.size < 16:
        return float("nan")
    b, gg = b - b.mean(), gg - gg.mean()
    if float(gg.std()) < FLAT_STD:
        return float(1.0 - np.abs(b - gg).mean() / 128.0)
    den = float(np.sqrt((b * b).sum() * (gg * gg).sum()))
    return float((b * gg).sum() / den) if den > 0 else 0.0


@lru_cache(maxsize=1)
def _orb() -> cv2.ORB:
    return cv2.ORB_create(nfeatures=1500, fastThreshold=10)  # type: ignore[attr-defined]


_GOLDEN_FEATURES: dict[str, tuple[tuple[cv2.KeyPoint, ...], np.ndarray, float]] = {}


def _golden_features(golden: Golden, s: float) -> tuple[tuple[cv2.KeyPoint, ...], np.ndarray, float]:
    key = f"{golden.sha256}@{s:.4f}"
    hit = _GOLDEN_FEATURES.get(key)
    if hit is None:
        kp, desc = _orb().detectAndCompute(_resize(golden.image, s), None)
        if len(_GOLDEN_FEATURES) > 256:
            _GOLDEN_FEATURES.clear()
        hit = _GOLDEN_FEATURES[key] = (tuple(kp), desc, s)
    return hit


def feature_homography(board: np.ndarray, golden: Golden, s: float) -> np.ndarray | None:
    """ORB + ratio test + RANSAC: crop pixels -> golden pixels, or None without a consistent match."""
    gkp, gdesc, _ = _golden_features(golden, s)
    bkp, bdesc = _orb().detectAndCompute(_resize(board, s), None)
    if gdesc is None or bdesc is None or len(bkp) < 8:
        return None
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(bdesc, gdesc, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < 12:
        return None
    src = np.array([bkp[m.queryIdx].pt for m in good], np.float32) / s
    dst = np.array([gkp[m.trainIdx].pt for m in good], np.float32) / s
    h, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 3.0 / s)
    if h is None or inliers is None or int(inliers.sum()) < 10:
        return None
    out: np.ndarray = h / h[2, 2]
    return out


def _plausible(h: np.ndarray, crop_shape: tuple[int, ...], golden_size: tuple[int, int]) -> str:
    """'' if the golden's corners land inside the crop (with slack) and the map is not degenerate."""
    w, hh = golden_size
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, hh, 1], [0, hh, 1]], np.float64).T
    back = np.linalg.inv(h) @ corners
    if np.any(np.abs(back[2]) < 1e-9):
        return "degenerate homography"
    pts = (back[:2] / back[2]).T
    ch, cw = crop_shape[:2]
    slack = 0.1 * max(cw, ch)
    if (
        pts[:, 0].min() < -slack
        or pts[:, 1].min() < -slack
        or pts[:, 0].max() > cw + slack
        or pts[:, 1].max() > ch + slack
    ):
        return "the golden board does not fit inside the crop"
    if cv2.contourArea(pts.astype(np.float32)) < 0.05 * cw * ch:
        return "degenerate homography"
    return ""


def align(
    crop: np.ndarray, board_xyxy: np.ndarray | tuple[float, ...], golden: Golden, settings: AlignSettings | None = None
) -> Alignment:
    """Register ``crop`` (the board and some margin; ``board_xyxy`` in crop pixels) to ``golden``."""
    cfg = settings or golden.align
    board = gray(crop)
    w, h = golden.size
    s_work = min(1.0, cfg.work_px / max(w, h))
    keep = None if golden.ignore is None else cv2.bitwise_not(golden.ignore)
    small = _resize(board, s_work)
    pad = max(3, round(0.03 * cfg.work_px))  # a frame of about 3% of the board: where its outline lies
    level = _golden_level(golden, s_work, pad, _surround(small, np.asarray(board_xyxy[:4], np.float64) * s_work))
    try:
        if cfg.method == "features":
            hom = feature_homography(board, golden, min(1.0, 2 * s_work))
            if hom is None:
                return Alignment(False, float("nan"), np.eye(3), None, "too few consistent feature matches")
        else:
            hom = seed_homography(board_xyxy, (w, h))
        hom, _ = _ecc(level, small, hom, s_work, cfg.iterations, keep, pad)
        s_score, scored = s_work, small
        if cfg.refine_px > cfg.work_px:
            s_score = min(1.0, cfg.refine_px / max(w, h))
            scored = _resize(board, s_score)
            hom, _ = _ecc(_golden_level(golden, s_score), scored, hom, s_score, max(5, cfg.iterations // 4), keep)
        score = board_score(scored, golden, hom, s_score, keep)
    except cv2.error:
        return Alignment(False, float("nan"), np.eye(3), None, "the correlation did not converge")
    problem = _plausible(hom, board.shape, (w, h))
    if problem:
        return Alignment(False, float("nan"), hom, None, problem)
    if score < cfg.min_score:
        return Alignment(False, score, hom, None, f"below the recipe's minimum {cfg.min_score:.2f}")
    return Alignment(True, score, hom, warp_to_golden(board, golden, hom, keep))


def warp_to_golden(board: np.ndarray, golden: Golden, hom: np.ndarray, keep: np.ndarray | None) -> np.ndarray:
    """The board in golden pixels, its brightness matched to the golden's (gain and offset)."""
    w, h = golden.size
    warped = cv2.warpPerspective(board, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    s = min(1.0, 128 / max(w, h))
    small_b, small_g = _resize(warped, s).astype(np.float32), _resize(golden.image, s).astype(np.float32)
    valid = np.ones(small_b.shape, bool) if keep is None else _resize(keep, s) > 0
    b, g = small_b[valid], small_g[valid]
    if b.size < 16:
        return warped
    gain = float(g.std()) / max(float(b.std()), 1e-3)
    out: np.ndarray = cv2.convertScaleAbs(warped, alpha=gain, beta=float(g.mean()) - gain * float(b.mean()))
    return out
