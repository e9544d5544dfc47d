"""A simulated PCB line: boards ride a belt across the camera, each frame with its ground truth.

The scene is the one :mod:`camera.synth` renders (so the part model sees here exactly
what it was trained on), drawn incrementally for speed: the belt texture is made
once, each board's scaled (and rotated) patch once per appearance, and a frame is a
belt crop plus patch copies. ``LineScene`` is the pure, seeded simulation;
``SimulatedLine`` is the camera that runs it in real time or as fast as the consumer reads.

Two modes:

- endless (demo): boards picked at random, defective with probability ``defect_rate``;
- replay: a finite sequence from :func:`replay_sequence` (every tested board exactly
  once, templates mixed in to the defect rate, seeded order); the camera stops after
  the last board has left the frame. :func:`split_sequence` shares one sequence
  among several cameras.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from camera.boards import BoardPool, BoardSprite
from camera.errors import CameraError
from camera.frame import BoardTruth, SourceState
from camera.source import EndOfStream, ReconnectPolicy, ThreadedSource
from camera.synth import MIN_VISIBLE, Effects, LineStyle, Placement, apply_effects, belt_texture, board_patch

DEFAULT_STYLE = LineStyle()
NO_EFFECTS = Effects()


@dataclass(frozen=True, eq=False)
class BoardPass:
    """One board going past a camera; ``appearance`` is unique within a sequence."""

    appearance: int
    sprite: BoardSprite


def replay_sequence(pool: BoardPool, defect_rate: float = 0.5, seed: int = 0) -> tuple[BoardPass, ...]:
    """Every tested board once, plus templates so that the defective share is ``defect_rate``; shuffled.

    For a plain folder (truth unknown) every image appears once and ``defect_rate`` is unused.
    """
    rng = np.random.default_rng(seed)
    if pool.defective:
        if not 0.0 < defect_rate <= 1.0:
            raise CameraError(f"defect_rate must be in (0, 1], got {defect_rate}")
        n_bad = len(pool.defective)
        n_good = max(n_bad, round(n_bad / defect_rate)) - n_bad
        if n_good and not pool.good:
            raise CameraError("no defect-free templates to mix in")
        rounds = math.ceil(n_good / len(pool.good)) if n_good else 0
        order = [int(i) for _ in range(rounds) for i in rng.permutation(len(pool.good))][:n_good]
        sprites = list(pool.defective) + [pool.good[i] for i in order]
    else:
        sprites = list(pool.good or pool.unknown)
    if not sprites:
        raise CameraError("the board pool is empty")
    return tuple(BoardPass(i, sprites[int(j)]) for i, j in enumerate(rng.permutation(len(sprites))))


def split_sequence(sequence: Sequence[BoardPass], cameras: int) -> list[tuple[BoardPass, ...]]:
    """Deal a sequence round-robin to ``cameras`` cameras: each board is shown by exactly one."""
    if cameras < 1:
        raise CameraError(f"cameras must be >= 1, got {cameras}")
    return [tuple(sequence[i::cameras]) for i in range(cameras)]


@dataclass(frozen=True)
class LineMotion:
    """How the belt moves and how boards are laid on it."""

    speed_px_s: float = 300.0  # belt speed in frame pixels per second
    fps: float = 15.0
    spacing_px: float = 120.0  # gap between consecutive boards
    spacing_jitter_px: float = 0.0  # the gap varies uniformly by +- this (never below 0)
    y_jitter_px: float = 0.0  # boards are centred vertically, +- this
    scale_jitter: float = 0.0  # board size varies by a factor 1 +- this
    angle_jitter_deg: float = 0.0  # board rotation +- this
    perspective: float = 0.0  # each board corner moves by up to this share of the side (slight keystone)
    light_jitter: float = 0.0  # board brightness gain 1 +- this, offset +- 40x this grey levels
    defect_rate: float = 0.5  # endless mode: probability that a board is defective
    seed: int = 0


@dataclass(eq=False)
class _OnBelt:
    """A board on the belt with its patch, made once for its whole appearance."""

    appearance: int
    placement: Placement
    size: int  # board side before rotation
    bgr: np.ndarray  # (ph, pw, 3)
    alpha: np.ndarray | None  # (ph, pw, 1) float32 in 0..1, only when alpha has values between 0 and 255
    mask: np.ndarray | None  # (ph, pw) uint8 1 where alpha > 127; None when opaque (no rotation)


class LineScene:
    """The seeded belt simulation; ``step()`` returns the next frame and its truth (None: replay done)."""

    def __init__(
        self,
        pool: BoardPool,
        style: LineStyle = DEFAULT_STYLE,
        motion: LineMotion = LineMotion(),
        effects: Effects = NO_EFFECTS,
        sequence: Sequence[BoardPass] | None = None,
    ) -> None:
        if motion.fps <= 0 or motion.speed_px_s <= 0:
            raise CameraError("fps and speed_px_s must be > 0")
        if sequence is None and pool.size == 0:
            raise CameraError("the board pool is empty")
        self.pool, self.style, self.motion, self.effects = pool, style, motion, effects
        self.sequence = None if sequence is None else tuple(sequence)
        self._rng = np.random.default_rng(motion.seed)
        self._fx_rng = np.random.default_rng([motion.seed, 1])
        self.belt = belt_texture(style, np.random.default_rng([motion.seed, 2]))
        self._plain = effects == NO_EFFECTS
        self.tick = 0
        self.offset = 0.0
        self._next_x = float(style.width)  # the first board enters at the right edge
        self._next_index = 0
        self.on_belt: list[_OnBelt] = []

    @property
    def finished(self) -> bool:
        return self.sequence is not None and self._next_index >= len(self.sequence) and not self.on_belt

    def _next_board(self) -> BoardPass | None:
        if self.sequence is None:
            sprite = self.pool.pick(self._rng, self.motion.defect_rate)
            self._next_index += 1
            return BoardPass(self._next_index - 1, sprite)
        if self._next_index >= len(self.sequence):
            return None
        self._next_index += 1
        return self.sequence[self._next_index - 1]

    def _spawn(self) -> None:
        """Lay boards on the belt until the next one would start beyond the right edge."""
        m, s = self.motion, self.style
        while self._next_x - self.offset < s.width:
            board = self._next_board()
            if board is None:
                return
            scale = 1.0 + (float(self._rng.uniform(-m.scale_jitter, m.scale_jitter)) if m.scale_jitter else 0.0)
            angle = float(self._rng.uniform(-m.angle_jitter_deg, m.angle_jitter_deg)) if m.angle_jitter_deg else 0.0
            size = max(8, int(round(s.board_px * scale)))
            y = (s.height - size) / 2 + (
                float(self._rng.uniform(-m.y_jitter_px, m.y_jitter_px)) if m.y_jitter_px else 0.0
            )
            persp = (
                tuple(float(v) for v in self._rng.uniform(-m.perspective, m.perspective, 8)) if m.perspective else ()
            )
            gain, bias = (
                (
                    1.0 + float(self._rng.uniform(-m.light_jitter, m.light_jitter)),
                    float(self._rng.uniform(-40, 40) * m.light_jitter),
                )
                if m.light_jitter
                else (1.0, 0.0)
            )
            placement = Placement(board.sprite, self._next_x, y, scale, angle, persp, gain, bias)
            patch = board_patch(placement, size)
            a8 = patch[..., 3]
            opaque = bool(a8.min() == 255)
            binary = not np.any((a8 > 0) & (a8 < 255))  # rotation warps alpha with nearest: 0 or 255 only
            alpha = None if opaque or binary else a8[..., None].astype(np.float32) / 255.0
            mask = None if opaque else (a8 > 127).view(np.uint8)
            self.on_belt.append(
                _OnBelt(board.appearance, placement, size, np.ascontiguousarray(patch[..., :3]), alpha, mask)
            )
            gap = m.spacing_px + (
                float(self._rng.uniform(-m.spacing_jitter_px, m.spacing_jitter_px)) if m.spacing_jitter_px else 0.0
            )
            self._next_x += size + max(0.0, gap)

    def step(self) -> tuple[np.ndarray, tuple[BoardTruth, ...]] | None:
        """Render the next frame; None once a replay sequence has fully left the frame."""
        self.offset = self.motion.speed_px_s * self.tick / self.motion.fps
        self._spawn()
        if self.finished:
            return None
        s = self.style
        shift = int(self.offset) % s.seam_every_px
        frame = self.belt[:, shift : shift + s.width].copy()
        truth = []
        gone = []
        for board in self.on_belt:
            x0 = int(round(board.placement.belt_x - self.offset)) - (board.bgr.shape[1] - board.size) // 2
            if x0 + board.bgr.shape[1] <= 0:
                gone.append(board)
                continue
            box = _paste(frame, board, x0)
            if box is not None:
                sprite = board.placement.sprite
                truth.append(BoardTruth(board.appearance, sprite.name, box, sprite.defective, sprite.product))
        for board in gone:
            self.on_belt.remove(board)
        self.tick += 1
        if not self._plain:
            frame = apply_effects(frame, self.effects, self._fx_rng)
        return frame, tuple(truth)


def _paste(frame: np.ndarray, board: _OnBelt, x0: int) -> np.ndarray | None:
    """Draw one board at frame x ``x0`` as synth.render does; its visible box, or None if too little shows."""
    ph, pw = board.bgr.shape[:2]
    y0 = int(round(board.placement.y)) - (ph - board.size) // 2
    height, width = frame.shape[:2]
    fx1, fy1, fx2, fy2 = max(0, x0), max(0, y0), min(width, x0 + pw), min(height, y0 + ph)
    if fx2 <= fx1 or fy2 <= fy1:
        return None
    sl = (slice(fy1 - y0, fy2 - y0), slice(fx1 - x0, fx2 - x0))
    if board.mask is None:
        frame[fy1:fy2, fx1:fx2] = board.bgr[sl]
        bx1, by1, bx2, by2 = fx1, fy1, fx2, fy2
    else:
        if board.alpha is None:  # alpha is 0 or 255: a masked copy equals the blend
            cv2.copyTo(board.bgr[sl], board.mask[sl], frame[fy1:fy2, fx1:fx2])  # in place into the view
        else:
            a = board.alpha[sl]
            region = frame[fy1:fy2, fx1:fx2].astype(np.float32)
            frame[fy1:fy2, fx1:fx2] = (board.bgr[sl] * a + region * (1 - a)).astype(np.uint8)
        cols, rows = np.flatnonzero(board.mask[sl].any(axis=0)), np.flatnonzero(board.mask[sl].any(axis=1))
        if not cols.size:
            return None
        bx1, bx2, by1, by2 = fx1 + cols[0], fx1 + cols[-1] + 1, fy1 + rows[0], fy1 + rows[-1] + 1
    if bx2 - bx1 < MIN_VISIBLE * pw:
        return None
    return np.array([bx1, by1, bx2, by2], np.float32)


class SimulatedLine(ThreadedSource):
    """A camera over a simulated line: real time (sleeps to the fps) or as fast as the consumer reads.

    With ``realtime=False`` no frame is ever dropped: the source waits for room in its
    buffer, so a replay is complete whatever the consumer's speed.
    """

    def __init__(
        self,
        camera_id: str,
        pool: BoardPool,
        *,
        style: LineStyle = DEFAULT_STYLE,
        motion: LineMotion = LineMotion(),
        effects: Effects = NO_EFFECTS,
        sequence: Sequence[BoardPass] | None = None,
        realtime: bool = True,
        buffer_size: int = 8,
        policy: ReconnectPolicy | None = None,
    ) -> None:
        super().__init__(camera_id, buffer_size=buffer_size, policy=policy, seed=motion.seed)
        self.scene = LineScene(pool, style, motion, effects, sequence)
        self.realtime = realtime
        self._t0: float | None = None

    def _open(self) -> None:
        if self._t0 is None:
            self._t0 = time.monotonic() - self.scene.tick / self.scene.motion.fps

    def _close(self) -> None:
        pass

    def _wait_turn(self) -> bool:
        """Wait until the next frame is due (real time) or the buffer has room; False when stopping."""
        if not self.realtime:
            while not self.buffer.wait_for_space(0.2):
                if self.stopping:
                    return False
            return not self.stopping
        assert self._t0 is not None
        period = 1.0 / self.scene.motion.fps
        due = self._t0 + self.scene.tick * period
        now = time.monotonic()
        if now > due + period:  # running late (slow machine): do not burst to catch up
            self._t0 = now - self.scene.tick * period
            return not self.stopping
        return not self._sleep(due - now)

    def _capture(self) -> bool:
        if self.scene.finished:
            raise EndOfStream
        if not self._wait_turn():
            return False
        result = self.scene.step()
        if result is None:
            raise EndOfStream
        image, truth = result
        self._emit(image, truth, t_media=(self.scene.tick - 1) / self.scene.motion.fps)
        return True

    @property
    def finished(self) -> bool:
        """A replay has shown its last board and the source stopped by itself."""
        return self.scene.finished and self.state is SourceState.STOPPED


@dataclass(frozen=True, eq=False)
class BoardCrop:
    """One board cut from a rendered frame as the engine cuts it: the crop, the board box in it, its truth."""

    crop: np.ndarray  # BGR, the board plus ``margin`` pixels
    board_xyxy: np.ndarray  # (4,) float32 board box in crop pixels
    truth: BoardTruth


def board_crops(scene: LineScene, margin: int = 16, edge: int = 20, limit: int | None = None) -> list[BoardCrop]:
    """Each board of a replay scene once, cut from the first frame where it is ``edge`` px inside the frame."""
    out: list[BoardCrop] = []
    seen: set[int] = set()
    while (limit is None or len(out) < limit) and (step := scene.step()) is not None:
        frame, truth = step
        h, w = frame.shape[:2]
        for t in truth:
            x1, y1, x2, y2 = (float(v) for v in t.xyxy)
            if t.appearance in seen or x1 < edge or x2 > w - edge:
                continue
            seen.add(t.appearance)
            cx1, cy1 = max(0, int(x1) - margin), max(0, int(y1) - margin)
            crop = frame[cy1 : min(h, int(y2) + margin), cx1 : min(w, int(x2) + margin)].copy()
            out.append(BoardCrop(crop, np.array([x1 - cx1, y1 - cy1, x2 - cx1, y2 - cy1], np.float32), t))
    return out
