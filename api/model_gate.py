"""The promotion gate as the line runs it: its dataset, its reviewed boards, its rules (see inspection.ml.gate)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from inspection.core.detections import Detections
from inspection.core.errors import DatasetError, ModelError
from inspection.inference.cards import read_card
from inspection.inference.models import load_detector
from inspection.ml import gate as g
from inspection.pipeline.rules import RulesConfig
from inspection.store import InspectionStore

if TYPE_CHECKING:
    from api.model_desk import DeskParts

Gate = Callable[[Path, Path | None], g.GateResult]


def judge_with(rules: RulesConfig) -> g.Judge:
    """The line's rules on a board's boxes (without the golden's differences): 'pass' / 'fail' / 'uncertain'."""

    def judge(det: Detections) -> str:
        if not len(det):
            return "pass"
        thr = rules.thresholds(det.class_names)[det.class_id]
        box = det.xyxy.astype(np.float64)
        big = (box[:, 2] - box[:, 0]).clip(0) * (box[:, 3] - box[:, 1]).clip(0) >= rules.min_area_px2
        if (big & (det.confidence >= thr)).any():
            return "fail"
        return "uncertain" if (big & (det.confidence >= rules.uncertain_low)).any() else "pass"

    return judge


def reviewed_boards(
    store: InspectionStore, line_id: str, limit: int, kind: str = "image", goldens: Path | None = None
) -> tuple[list[g.Reviewed], Counter[str]]:
    """The line's reviewed inspections (newest first) as the model saw them, with their reviewed verdict.

    A plain model saw the evidence crop. A reference model saw the board registered to its golden
    composed with the golden read back by sha256 (as ``twinspect retrain`` builds it); boards whose
    golden is not there or whose alignment failed cannot be rebuilt and are counted by reason.
    """
    from inspection.ml.images import read_image
    from inspection.ml.retrain import GoldenCache, reviewed, reviewed_reference_input
    from inspection.reference.goldens import GoldenFiles

    cache = GoldenCache(GoldenFiles(goldens) if goldens is not None else None)
    boards: list[g.Reviewed] = []
    skipped: Counter[str] = Counter()
    for item in reviewed(store, line_id):
        if len(boards) >= limit:
            break
        path = store.evidence.path(item.evidence_sha256)
        if not path.is_file():
            skipped["evidence"] += 1
            continue
        if kind != "reference":
            boards.append(g.Reviewed(read_image(path), item.outcome.value))
            continue
        image, why = reviewed_reference_input(item, path, cache)
        if image is None:
            skipped[why] += 1
            continue
        boards.append(g.Reviewed(image, item.outcome.value))
    return boards, skipped


def line_gate(parts: DeskParts, inspections: InspectionStore | None, data: Path | None = None) -> LineGate:
    """The gate of a desk's line: its gate rules, gate set (``data`` wins), reviewed boards and goldens."""
    return LineGate(
        parts.gate, parts.rules, parts.line_id, data or parts.gate_data, inspections, parts.goldens, parts.role
    )


@dataclass
class LineGate:
    """The gate of one line: ``__call__(candidate, active)`` gives a GateResult (see inspection.ml.gate)."""

    config: g.GateConfig
    rules: RulesConfig
    line_id: str
    data: Path | None = None  # data YAML of the gate set (default: the candidate's training data)
    inspections: InspectionStore | None = None
    goldens: Path | None = None  # the goldens folder (a reference model's reviewed boards need their golden)
    role: str = "defect"  # a part model is gated on export parity and its validation split only

    def __call__(self, candidate: Path, active: Path | None) -> g.GateResult:
        card = read_card(candidate)
        result = g.GateResult(f"{card['name']}:{card['version']}", _ref(active))
        data = self.data or Path(str((card.get("training_data") or {}).get("yaml") or ""))
        images = self._samples(data, result)
        g.parity(candidate, images, self.config, result, load_detector)
        if not result.passed:
            return result  # the export does not answer like the weights: nothing else is worth measuring
        self._val(candidate, active, data, result)
        self._reviewed(candidate, active, str(card.get("input", "image")), result)
        return result

    def _samples(self, data: Path, result: g.GateResult) -> list[np.ndarray]:
        from inspection.ml.datasets.yolo import load_data_yaml
        from inspection.ml.images import read_image

        if not self.config.parity_images:
            return []
        try:
            spec = load_data_yaml(data)
            return [read_image(p) for p in spec.images(self.config.split)[: self.config.parity_images]]
        except (DatasetError, OSError):
            return []

    def _val(self, candidate: Path, active: Path | None, data: Path, result: g.GateResult) -> None:
        try:
            cand = g.score_split(candidate, data, self.config.split)
        except (DatasetError, OSError) as error:
            result.add("val split", None, None, f"a gate set is needed ({error})", False)
            return
        act = g.score_split(active, data, self.config.split) if active is not None else None
        result.notes.append(f"validation split: {data} ({self.config.split}, {cand['summary']['images']} images)")
        g.val_rows(act, cand, self.config, result)

    def _reviewed(self, candidate: Path, active: Path | None, kind: str, result: g.GateResult) -> None:
        if self.role != "defect":
            result.notes.append(f"reviewed inspections: QA reviews defects, not a {self.role} model's boxes")
            return
        if self.inspections is None:
            result.notes.append("reviewed inspections: no store in this process")
            return
        boards, skipped = reviewed_boards(self.inspections, self.line_id, self.config.max_reviewed, kind, self.goldens)
        if skipped:
            why = ", ".join(f"{n} {WHY[k]}" for k, n in sorted(skipped.items()))
            result.notes.append(f"reviewed inspections left out: {why}")
        judge = judge_with(self.rules)
        cand = g.reviewed_rates(load_detector(candidate), boards, judge)
        act = g.reviewed_rates(load_detector(active), boards, judge) if active is not None else None
        g.reviewed_rows(act, cand, self.config, result)


WHY = {
    "evidence": "without a readable evidence file",
    "golden": "without their golden image",
    "alignment": "not registered to their golden (alignment failed)",
}


def _ref(folder: Path | None) -> str | None:
    if folder is None:
        return None
    try:
        card = read_card(folder)
    except ModelError:
        return folder.name
    return f"{card['name']}:{card['version']}"
