"""Render conveyor frames: boards moving across a textured belt, with ground truth.

Used twice, so that the part model is trained on exactly what the simulated camera
shows: ``twinspect datasets synth-line`` renders random scenes into a YOLO dataset,
and the simulated line renders a continuous scene frame after frame.

A scene is a belt (texture and seams, scrolled by ``offset``) plus boards placed at
belt coordinates. Rendering maps belt coordinates to frame pixels, pastes each
visible board (scaled, slightly rotated), then applies lighting, motion blur and
sensor noise to the whole frame. Boxes are the visible part of each board, clipped
to the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from camera.boards import BoardSprite

TIGHT_GAP_SHARE = 0.35
MIN_VISIBLE = 0.04  # a board with less than this share of its width in view is not labelled


@dataclass(frozen=True)
class LineStyle:
    """What the line looks like; every field has a sensible default."""

    width: int = 1280
    height: int = 720
    board_px: int = 560  # board side in frame pixels
    belt_grey: int = 55
    seam_every_px: int = 400


@dataclass(frozen=True)
class Effects:
    """Per-frame photometric effects."""

    gain: float = 1.0  # global brightness multiplier
    bias: float = 0.0  # added after gain
    gradient: float = 0.0  # left-right illumination falloff, 0..0.5
    blur_px: int = 0  # horizontal motion blur length
    noise_sigma: float = 0.0

    @staticmethod
    def random(rng: np.random.Generator) -> Effects:
        return Effects(
            gain=float(rng.uniform(0.7, 1.25)),
            bias=float(rng.uniform(-20, 20)),
            gradient=float(rng.uniform(0.0, 0.35)),
            blur_px=int(rng.choice([0, 0, 3, 5, 9])),
            noise_sigma=float(rng.uniform(0.0, 9.0)),
        )


@dataclass(frozen=True)
class Placement:
    """A board on the belt: its left edge in belt coordinates, its row and pose."""

    sprite: BoardSprite
    belt_x: float
    y: float
    scale: float = 1.0
    angle: float = 0.0  # degrees
    perspective: tuple[float, ...] = ()  # 8 corner offsets (dx, dy of TL, TR, BR, BL) as shares of the side
    gain: float = 1.0  # board brightness: grey * gain + bias (lighting differs board to board)
    bias: float = 0.0


def belt_texture(style: LineStyle, rng: np.random.Generator) -> np.ndarray:
    """A belt texture one frame wide plus one seam period, tileable horizontally."""
    w = style.width + style.seam_every_px
    base: np.ndarray = rng.normal(style.belt_grey, 6, size=(style.height, w)).astype(np.float32)
    base = cv2.GaussianBlur(base, (0, 0), sigmaX=2.5)
    rows = np.sin(np.arange(style.height) / rng.uniform(3, 8))[:, None] * rng.uniform(1, 5)
    base += rows.astype(np.float32)
    tint = rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    belt: np.ndarray = np.clip(base[..., None] * tint, 0, 255).astype(np.uint8)
    for x in range(0, w, style.seam_every_px):
        belt[:, x : x + 4] = np.clip(belt[:, x : x + 4].astype(np.int16) - 25, 0, 255).astype(np.uint8)
    return belt


def _keystone(img: np.ndarray, alpha: np.ndarray, offsets: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``img`` and its alpha with each corner moved by ``offsets`` (shares of the side): a slight perspective."""
    size = img.shape[0]
    src = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float32)
    dst = src + np.array(offsets, np.float32).reshape(4, 2) * size
    dst -= dst.min(axis=0)
    side = int(np.ceil(dst.max()))
    m = cv2.getPerspectiveTransform(src, dst)
    return (
        cv2.warpPerspective(img, m, (side, side), flags=cv2.INTER_LINEAR),
        cv2.warpPerspective(alpha, m, (side, side), flags=cv2.INTER_NEAREST),
    )


def board_patch(p: Placement, size: int) -> np.ndarray:
    """The board scaled (keystoned, re-lit and rotated) as BGR with an alpha mask, of side about ``size``."""
    img = cv2.resize(p.sprite.image, (size, size), interpolation=cv2.INTER_AREA)
    if p.gain != 1.0 or p.bias:
        img = np.clip(img.astype(np.float32) * p.gain + p.bias + 0.5, 0, 255).astype(np.uint8)
    alpha: np.ndarray = np.full((size, size), 255, np.uint8)
    if p.perspective:
        img, alpha = _keystone(img, alpha, p.perspective)
        size = img.shape[0]
    bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if abs(p.angle) > 0.01:
        diag = int(np.ceil(size * (abs(np.cos(np.radians(p.angle))) + abs(np.sin(np.radians(p.angle))))))
        m: np.ndarray = cv2.getRotationMatrix2D((size / 2, size / 2), p.angle, 1.0)
        m[:, 2] += (diag - size) / 2
        bgr = cv2.warpAffine(bgr, m, (diag, diag), flags=cv2.INTER_LINEAR)
        alpha = cv2.warpAffine(alpha, m, (diag, diag), flags=cv2.INTER_NEAREST)
    return np.dstack([bgr, alpha])


def render(
    style: LineStyle,
    belt: np.ndarray,
    offset: float,
    placements: list[Placement],
    effects: Effects,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """One frame and, per visible board, (index into placements, visible xyxy box in frame pixels).

    ``offset`` is how far the belt has moved (pixels); a board at ``belt_x`` appears at
    frame x = belt_x - offset.
    """
    shift = int(offset) % style.seam_every_px
    frame = belt[:, shift : shift + style.width].copy()
    boxes: list[tuple[int, np.ndarray]] = []
    for i, p in enumerate(placements):
        size = max(8, int(round(style.board_px * p.scale)))
        patch = board_patch(p, size)
        ph, pw = patch.shape[:2]
        x0 = int(round(p.belt_x - offset)) - (pw - size) // 2
        y0 = int(round(p.y)) - (ph - size) // 2
        fx1, fy1 = max(0, x0), max(0, y0)
        fx2, fy2 = min(style.width, x0 + pw), min(style.height, y0 + ph)
        if fx2 <= fx1 or fy2 <= fy1:
            continue
        sub = patch[fy1 - y0 : fy2 - y0, fx1 - x0 : fx2 - x0]
        a = sub[..., 3:4].astype(np.float32) / 255.0
        region = frame[fy1:fy2, fx1:fx2].astype(np.float32)
        frame[fy1:fy2, fx1:fx2] = (sub[..., :3] * a + region * (1 - a)).astype(np.uint8)
        ys, xs = np.nonzero(sub[..., 3] > 127)
        if xs.size and (xs.max() - xs.min() + 1) >= MIN_VISIBLE * pw:
            boxes.append(
                (i, np.array([fx1 + xs.min(), fy1 + ys.min(), fx1 + xs.max() + 1, fy1 + ys.max() + 1], np.float32))
            )
    return apply_effects(frame, effects, rng), boxes


def apply_effects(frame: np.ndarray, fx: Effects, rng: np.random.Generator) -> np.ndarray:
    out: np.ndarray = frame.astype(np.float32)
    if fx.gradient:
        ramp = np.linspace(1.0, 1.0 - fx.gradient, frame.shape[1], dtype=np.float32)
        out *= ramp[None, :, None]
    out = out * fx.gain + fx.bias
    if fx.blur_px > 1:
        kernel = np.full((1, fx.blur_px), 1.0 / fx.blur_px, np.float32)
        out = cv2.filter2D(out, -1, kernel)
    if fx.noise_sigma > 0:
        out += rng.normal(0, fx.noise_sigma, size=out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def random_scene(style: LineStyle, sprites: list[BoardSprite], rng: np.random.Generator) -> list[Placement]:
    """Boards at random spacing along one frame's worth of belt, some cut by the edges.

    Boards never overlap (as on a real belt): each one takes the width of its rotated
    outline, then the gap; a third of the gaps are tight (2-30 px), so that boards nearly
    touching must still be told apart.
    """
    placements = []
    cursor = float(rng.uniform(-style.board_px * 0.95, style.board_px * 0.3))  # left edge of the next outline
    while cursor < style.width:
        scale = float(rng.uniform(0.85, 1.1))
        angle = float(rng.uniform(-3, 3))
        size = style.board_px * scale
        extent = np.ceil(size * (abs(np.cos(np.radians(angle))) + abs(np.sin(np.radians(angle))))) + 1
        y_free = max(0.0, style.height - extent)
        y = float(rng.uniform(0, y_free)) + (extent - size) / 2 if y_free else (style.height - size) / 2
        placements.append(
            Placement(sprites[int(rng.integers(len(sprites)))], cursor + (extent - size) / 2, y, scale, angle)
        )
        tight = rng.random() < TIGHT_GAP_SHARE
        cursor += extent + float(rng.uniform(2, 30) if tight else rng.uniform(30, style.board_px * 0.9))
    return placements
