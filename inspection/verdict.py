"""The per-part result of an inspection."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from inspection.detections import Detections


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class ReferenceInfo:
    """How a board was compared with its golden: which recipe and golden, and how well it aligned.

    With a reference model the verdict's crop is the board *registered to the golden*
    (golden pixels), and its boxes are in those pixels, so the crop, the boxes and the
    golden image line up one to one.
    """

    recipe: str
    golden_sha256: str
    alignment_score: float  # normalised correlation of aligned board and golden (1 = identical); nan if none
    aligned: bool  # False: alignment failed and the board was not inspected (verdict uncertain)
    homography: tuple[float, ...] = ()  # 9 values, row-major: crop pixels -> golden pixels


@dataclass(frozen=True, eq=False)
class Verdict:
    """One verdict per part: outcome, evidence crop, and defects in board-crop coordinates."""

    part_id: str  # stable id: "<run id>-<camera>-<track id>-<first frame seq>"
    camera_id: str
    track_id: int
    outcome: Outcome
    defects: Detections  # boxes in crop pixels (all kept boxes, each with its class)
    crop: np.ndarray  # BGR crop of the board from the full-resolution frame
    board_xyxy: np.ndarray  # (4,) where the crop was taken in the frame
    frame_seq: int  # the frame the crop came from
    t_capture: float  # monotonic capture time of that frame
    reasons: tuple[str, ...] = ()  # why fail / uncertain, human readable
    reference: ReferenceInfo | None = None  # golden-reference inspections only
