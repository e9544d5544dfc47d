"""Verdict rules: the defect model's boxes on a board crop -> one pass / fail / uncertain verdict.

Per box (class ``c``, confidence ``p``, area ``a`` in crop px²):
- ``a < min_area_px2``: ignored (too small to matter, or noise);
- ``p >= threshold(c)``: a clear defect -> the part fails;
- ``uncertain_low <= p < threshold(c)``: a possible defect -> the part is uncertain,
  unless a clear defect makes it fail;
- lower: ignored.
``threshold(c)`` is ``class_thresholds[c]`` when given, else ``fail_threshold``.

Golden-reference inspection adds two rules (see :mod:`inspection.pipeline.reference_stage`):
- a board that could not be compared with its golden (no recipe, no golden, alignment
  failed) is ``uncertain`` with that reason; it is never passed;
- a region where the board differs from its golden that no defect box explains
  (:mod:`inspection.reference.differences`) makes a board that would pass ``uncertain``, with the
  reason ``unexplained difference at (x1,y1)-(x2,y2)``.
With a reference model the verdict's crop is the board registered to its golden, and the
boxes are in those (golden) pixels.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from inspection.core.detections import Detections
from inspection.core.errors import RulesError
from inspection.core.outcome import Outcome
from inspection.pipeline.parts import InspectRequest
from inspection.pipeline.reference_stage import Prepared
from inspection.pipeline.verdict import Verdict
from inspection.reference.differences import DifferenceConfig, unexplained

MAX_DIFFERENCE_REASONS = 5


class RulesConfig(BaseModel):
    """How defect boxes on a board crop become a verdict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Confidence at or above which a box is a clear "
        "defect (fail), for every class without its own threshold.",
    )
    class_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Per-class fail thresholds by class name, overriding fail_threshold, e.g. {'spur': 0.7}.",
    )
    uncertain_low: float = Field(
        0.25,
        ge=0,
        le=1,
        description="Boxes with confidence in [uncertain_low, "
        "class threshold) make the part uncertain when nothing is a clear fail; "
        "lower boxes are ignored.",
    )
    min_area_px2: float = Field(0.0, ge=0, description="Boxes smaller than this area (crop pixels²) are ignored.")
    differences: DifferenceConfig = Field(
        default_factory=DifferenceConfig,
        description="Reference models: differences from the golden that no defect box explains make a board uncertain.",
    )

    @model_validator(mode="after")
    def _check_thresholds(self) -> RulesConfig:
        for name, value in {"fail_threshold": self.fail_threshold, **self.class_thresholds}.items():
            if not 0 <= value <= 1:
                raise ValueError(f"threshold of {name} must be in [0, 1], got {value}")
            if value < self.uncertain_low:
                raise ValueError(f"threshold of {name} ({value}) is below uncertain_low ({self.uncertain_low})")
        return self

    def thresholds(self, class_names: tuple[str, ...]) -> np.ndarray:
        """(K,) fail threshold of each class id of a model with ``class_names``."""
        unknown = sorted(set(self.class_thresholds) - set(class_names))
        if unknown:
            raise RulesError(
                f"class_thresholds name classes the defect model does not have: {unknown} "
                f"(model classes: {list(class_names)})"
            )
        return np.array([self.class_thresholds.get(n, self.fail_threshold) for n in class_names], np.float64)


def apply_rules(
    request: InspectRequest, defects: Detections, config: RulesConfig, prepared: Prepared | None = None
) -> Verdict:
    """The verdict of one part from the defect boxes found on its crop (or its aligned board)."""
    if prepared is not None and not prepared.ok:
        return Verdict(
            part_id=request.part_id,
            camera_id=request.camera_id,
            track_id=request.track_id,
            outcome=Outcome.UNCERTAIN,
            defects=Detections.empty(defects.class_names),
            crop=request.crop,
            board_xyxy=request.crop_xyxy.astype(np.float32),
            frame_seq=request.frame_seq,
            t_capture=request.t_capture,
            reasons=(f"uncertain: {prepared.problem}",),
            reference=prepared.info,
        )
    thr_by_class = config.thresholds(defects.class_names)
    box = defects.xyxy.astype(np.float64)
    area = (box[:, 2] - box[:, 0]).clip(0) * (box[:, 3] - box[:, 1]).clip(0)
    conf = defects.confidence.astype(np.float64)
    thr = thr_by_class[defects.class_id] if len(defects) else np.zeros(0)
    big = area >= config.min_area_px2
    clear = big & (conf >= thr)
    maybe = big & ~clear & (conf >= config.uncertain_low)
    outcome = Outcome.FAIL if clear.any() else Outcome.UNCERTAIN if maybe.any() else Outcome.PASS
    kept = np.nonzero(clear | maybe)[0]
    kept = kept[np.lexsort((-conf[kept], ~clear[kept]))]  # clear defects first, then by confidence
    reasons = tuple(_reason(defects, int(k), bool(clear[k]), float(thr[k]), config.uncertain_low) for k in kept)
    if prepared is not None and prepared.differences is not None:
        lonely = unexplained(prepared.differences, defects.xyxy)
        if lonely.size and outcome is Outcome.PASS:
            outcome = Outcome.UNCERTAIN
        reasons += _difference_reasons(prepared, lonely)
    return Verdict(
        part_id=request.part_id,
        camera_id=request.camera_id,
        track_id=request.track_id,
        outcome=outcome,
        defects=defects.filter(kept),
        crop=evidence_crop(request, prepared),
        board_xyxy=request.crop_xyxy.astype(np.float32),
        frame_seq=request.frame_seq,
        t_capture=request.t_capture,
        reasons=reasons,
        reference=prepared.info if prepared is not None else None,
    )


def evidence_crop(request: InspectRequest, prepared: Prepared | None) -> np.ndarray:
    """What a verdict keeps as its crop: the board registered to its golden when there is one (it, its boxes
    and the golden line up pixel for pixel, whatever the model then did), else the crop as cut."""
    return prepared.aligned if prepared is not None and prepared.aligned is not None else request.crop


def _difference_reasons(prepared: Prepared, lonely: np.ndarray) -> tuple[str, ...]:
    """One reason per unexplained difference, largest first, at most MAX_DIFFERENCE_REASONS."""
    assert prepared.differences is not None
    d = prepared.differences
    order = lonely[np.argsort(-d.area[lonely], kind="stable")]
    out = []
    for k in order[:MAX_DIFFERENCE_REASONS]:
        x1, y1, x2, y2 = (int(v) for v in d.xyxy[k])
        out.append(f"uncertain: unexplained difference at ({x1},{y1})-({x2},{y2}), {int(d.area[k])} px²")
    if order.size > MAX_DIFFERENCE_REASONS:
        out.append(f"uncertain: {order.size - MAX_DIFFERENCE_REASONS} more unexplained difference(s)")
    return tuple(out)


def _reason(defects: Detections, k: int, clear: bool, threshold: float, low: float) -> str:
    name = defects.class_names[int(defects.class_id[k])]
    x1, y1, x2, y2 = (round(float(v)) for v in defects.xyxy[k])
    conf = float(defects.confidence[k])
    where = f"at ({x1},{y1})-({x2},{y2})"
    if clear:
        return f"fail: {name} {conf:.2f} >= {threshold:.2f} {where}"
    return f"uncertain: {name} {conf:.2f} in [{low:.2f}, {threshold:.2f}) {where}"
