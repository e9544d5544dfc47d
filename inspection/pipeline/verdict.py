"""The per-part result of an inspection."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from inspection.core.detections import Detections
from inspection.core.outcome import Outcome
from inspection.store import BoxRecord, EvidenceStore, InspectionRecord, encode_jpeg


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


def inspection_record(
    verdict: Verdict,
    *,
    line_id: str,
    model_name: str,
    model_version: str,
    captured_at: datetime,
    evidence: EvidenceStore | None = None,
    jpeg_quality: int = 90,
    record_id: str | None = None,
    evidence_sha256: str | None = None,
) -> InspectionRecord:
    """The store's record of ``verdict``: its crop encoded as JPEG into ``evidence``.

    The evidence file is written (durably) before the record exists, so a stored
    record never names a missing file. A caller that wrote the evidence itself passes
    its ``evidence_sha256`` instead of ``evidence``.
    """
    if evidence_sha256 is not None:
        sha = evidence_sha256
    elif evidence is not None:
        sha = evidence.put(encode_jpeg(verdict.crop, jpeg_quality))
    else:
        raise ValueError("inspection_record needs the evidence store or the evidence's sha256")
    dets = verdict.defects
    boxes = tuple(
        BoxRecord(float(b[0]), float(b[1]), float(b[2]), float(b[3]), float(c), dets.class_names[int(k)])
        for b, c, k in zip(dets.xyxy, dets.confidence, dets.class_id, strict=True)
    )
    x1, y1, x2, y2 = (float(v) for v in verdict.board_xyxy[:4])
    ref = verdict.reference
    score = float(ref.alignment_score) if ref is not None else math.nan
    return InspectionRecord(
        id=record_id or str(uuid.uuid4()),
        part_id=verdict.part_id,
        line_id=line_id,
        camera_id=verdict.camera_id,
        track_id=int(verdict.track_id),
        outcome=Outcome(verdict.outcome),
        reasons=tuple(verdict.reasons),
        model_name=model_name,
        model_version=model_version,
        frame_seq=int(verdict.frame_seq),
        captured_at=captured_at,
        evidence_sha256=sha,
        board_xyxy=(x1, y1, x2, y2),
        crop_width=int(verdict.crop.shape[1]),
        crop_height=int(verdict.crop.shape[0]),
        boxes=boxes,
        recipe=ref.recipe if ref is not None else None,
        golden_sha256=ref.golden_sha256 if ref is not None else None,
        alignment_score=score if math.isfinite(score) else None,
    )
