"""Where a board differs from its golden: the regions the defect model has to explain.

A pixel differs when the board is brighter than every golden pixel within
``tolerance_px`` of it, or darker than every one (the tolerance comparison of AOI
machines: residual misregistration and resampling along copper edges are not
differences, extra or missing copper is), by more than ``threshold`` grey levels. The
mask is opened with a square of ``open_px`` (single-pixel noise goes), a band of
``border_px`` along the image edges and the recipe's ignore mask are left out, and each
connected region of at least ``min_area_px2`` pixels is a difference. A difference that no defect box overlaps is
*unexplained*: the rules make such a board ``uncertain``, so a kind of defect the model
has never seen is never passed silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class DifferenceConfig(BaseModel):
    """How differences between a board and its golden are found."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Check for differences no defect box explains (reference models).")
    threshold: int = Field(80, ge=1, le=255, description="Grey-level difference at which a pixel differs.")
    tolerance_px: int = Field(
        3,
        ge=0,
        le=10,
        description="A board pixel is compared with the brightest and "
        "darkest golden pixel within this distance (absorbs residual misregistration).",
    )
    open_px: int = Field(
        3, ge=1, le=15, description="Side of the square opening that removes single-pixel noise (pixels)."
    )
    border_px: int = Field(
        6,
        ge=0,
        le=100,
        description="Band along the image edges that is never compared (resampling at the board's outline).",
    )
    min_area_px2: float = Field(
        60.0, ge=1, description="Smallest differing region (golden pixels²) that must be explained by a defect box."
    )


@dataclass(frozen=True)
class Differences:
    """Differing regions of one board: (N, 4) xyxy boxes in golden pixels and their areas."""

    xyxy: np.ndarray
    area: np.ndarray

    def __len__(self) -> int:
        return int(self.area.size)


def find_differences(
    aligned: np.ndarray, golden: np.ndarray, config: DifferenceConfig, ignore: np.ndarray | None = None
) -> Differences:
    """The differing regions of ``aligned`` (board in golden pixels) against ``golden``."""
    r = config.tolerance_px
    if r:
        kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
        diff = cv2.max(
            cv2.subtract(aligned, cv2.dilate(golden, kernel)), cv2.subtract(cv2.erode(golden, kernel), aligned)
        )
    else:
        diff = cv2.absdiff(aligned, golden)
    _, mask = cv2.threshold(diff, config.threshold - 1, 255, cv2.THRESH_BINARY)
    if config.open_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((config.open_px, config.open_px), np.uint8))
    if ignore is not None:
        mask[ignore > 0] = 0
    b = config.border_px
    if b:
        mask[:b], mask[-b:], mask[:, :b], mask[:, -b:] = 0, 0, 0, 0
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    stats = stats[1:n]
    keep = stats[:, cv2.CC_STAT_AREA] >= config.min_area_px2
    s = stats[keep]
    xyxy = np.stack([s[:, 0], s[:, 1], s[:, 0] + s[:, 2], s[:, 1] + s[:, 3]], axis=1).astype(np.float32)
    return Differences(xyxy.reshape(-1, 4), s[:, cv2.CC_STAT_AREA].astype(np.float64))


def unexplained(diffs: Differences, boxes: np.ndarray, pad_px: float = 2.0) -> np.ndarray:
    """Indices of the differences that overlap none of ``boxes`` ((M, 4) xyxy, padded by ``pad_px``)."""
    if len(diffs) == 0:
        return np.zeros(0, np.int64)
    if boxes.size == 0:
        return np.arange(len(diffs))
    b = boxes.reshape(-1, 4).astype(np.float32)
    d = diffs.xyxy
    overlap = (
        (d[:, None, 0] < b[None, :, 2] + pad_px)
        & (d[:, None, 2] > b[None, :, 0] - pad_px)
        & (d[:, None, 1] < b[None, :, 3] + pad_px)
        & (d[:, None, 3] > b[None, :, 1] - pad_px)
    )
    return np.flatnonzero(~overlap.any(axis=1))
