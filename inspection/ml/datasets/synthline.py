"""``twinspect datasets synth-line``: a YOLO dataset of conveyor frames for the part model.

Frames come from :mod:`camera.synth`, the renderer the simulated camera uses. Boards
are split by name into two pools so that validation and test frames show boards the
training frames never did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camera.synth import Effects, LineStyle, belt_texture, random_scene, render
from inspection.core.classes import PART_CLASSES
from inspection.core.errors import DatasetError
from inspection.ml.datasets.boards import load_boards
from inspection.ml.datasets.deeppcb import is_validation
from inspection.ml.datasets.yolo import Box, YoloDatasetWriter
from inspection.ml.hashing import tree_sha256

EMPTY_SHARE = 0.05


def synth_line_dataset(
    boards: Path,
    out: Path,
    train: int = 400,
    val: int = 100,
    test: int = 100,
    seed: int = 0,
    style: LineStyle | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it,
) -> dict[str, Any]:
    """Render ``train + val + test`` frames and write them as a YOLO dataset; returns the card."""
    for name, n in (("train", train), ("val", val), ("test", test)):
        if n < 0:
            raise DatasetError(f"{name}: frame count must not be negative, got {n}")
    style = style or LineStyle()
    sprites = load_boards(boards)
    held_out = [s for s in sprites if is_validation(s.name, 20)]
    seen = [s for s in sprites if not is_validation(s.name, 20)]
    if not held_out or not seen:
        raise DatasetError(f"{boards}: need at least a handful of boards to split (found {len(sprites)})")
    rng = np.random.default_rng(seed)
    writer = YoloDatasetWriter(out, PART_CLASSES)
    try:
        jobs = [("train", i, seen) for i in range(train)]
        jobs += [("val", i, held_out) for i in range(val)] + [("test", i, held_out) for i in range(test)]
        belts = [belt_texture(style, rng) for _ in range(8)]
        for split, i, pool in progress(jobs):
            # a few frames of empty belt: gaps between batches, a stopped feeder
            placements = [] if rng.random() < EMPTY_SHARE else random_scene(style, pool, rng)
            belt = belts[int(rng.integers(len(belts)))]
            frame, boxes = render(
                style, belt, float(rng.uniform(0, style.seam_every_px)), placements, Effects.random(rng), rng
            )
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if not ok:
                raise DatasetError("could not encode a rendered frame as JPEG")
            writer.add(
                split,
                f"{split}_{i:05d}.jpg",
                buf.tobytes(),
                (style.width, style.height),
                [Box(float(b[0]), float(b[1]), float(b[2]), float(b[3]), 0) for _, b in boxes],
            )
        files = [p for p in Path(boards).rglob("*") if p.is_file()]
        return writer.commit(
            tree_sha256(files, Path(boards)),
            {
                "name": out.name,
                "source": f"synthetic conveyor frames rendered from {len(sprites)} boards ({boards})",
                "split_rule": "boards with sha256(name) % 100 < 20 appear only in val/test frames",
                "seed": seed,
                "style": {"width": style.width, "height": style.height, "board_px": style.board_px},
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
    except BaseException:
        writer.abort()
        raise
