"""Retraining from QA: the line's reviewed inspections (with their corrections) plus the base dataset.

``plan_retrain`` counts what a retrain would use and writes nothing (``twinspect retrain
--dry-run`` prints it); ``write_dataset`` makes the dataset version: the reviewed evidence
crops with their boxes after review (rejected boxes left out, relabelled and drawn ones in),
added to the base dataset's training split; the validation split stays the base one, the
gate set the candidate is judged on. The card records the inspections it took (their ids'
sha256), the base dataset and the counts.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspection.core.errors import DatasetError, ModelError
from inspection.inference.cards import read_card
from inspection.ml.datasets.yolo import Box, YoloDatasetWriter, load_data_yaml
from inspection.store import InspectionFilter, InspectionStore, StoredInspection

STEPS = (
    "dataset: reviewed inspections + the base training split -> a dataset version with its card",
    "train: resume from the active model's weights",
    "eval: the new run on the base validation split",
    "register: a new version in the registry (what is served does not change)",
    "gate: export parity, then the candidate against the active model (val split + reviewed boards)",
    "shadow: the candidate beside the active model on the line",
)


@dataclass
class RetrainPlan:
    line_id: str
    active: str
    resume_from: Path
    base_data: Path
    base_counts: dict[str, Any]
    out: Path
    epochs: int
    reviewed: int = 0
    corrected: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    boxes: Counter[str] = field(default_factory=Counter)
    missing_evidence: int = 0
    input_kind: str = "image"

    def lines(self) -> list[str]:
        """The plan as the CLI prints it."""
        base = self.base_counts
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(self.verdicts.items()))
        boxes = ", ".join(f"{k} {v}" for k, v in sorted(self.boxes.items())) or "none"
        out = [
            f"retrain plan for line {self.line_id} (active {self.active}, input {self.input_kind})",
            f"  reviewed inspections: {self.reviewed} ({verdicts}; {self.corrected} corrected by QA; "
            f"{self.missing_evidence} without evidence, left out)",
            f"  their boxes after review: {sum(self.boxes.values())} ({boxes})",
            f"  base dataset {self.base_data}: train {base.get('train', '?')} images, "
            f"val {base.get('val', '?')} images",
            f"  dataset version: {self.out}",
            f"  train {self.epochs} epochs resuming from {self.resume_from}",
        ]
        return out + [f"  step {i}: {s}" for i, s in enumerate(STEPS, 1)]


def reviewed(store: InspectionStore, line_id: str) -> Iterator[StoredInspection]:
    """The line's reviewed inspections, newest first."""
    cursor = None
    while True:
        page = store.list(InspectionFilter(line_id=line_id), cursor=cursor, limit=500)
        yield from (i for i in page.items if i.review_status.value != "pending")
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def plan_retrain(
    store: InspectionStore, line_id: str, active_folder: Path, datasets_dir: Path, epochs: int, data: Path | None = None
) -> RetrainPlan:
    """What a retrain of the line would take (nothing is written); ModelError / DatasetError when it cannot run."""
    card = read_card(active_folder)
    pt = active_folder / "model.pt"
    if not pt.is_file():
        raise ModelError(f"{active_folder}: no model.pt to resume training from")
    base = Path(data or (card.get("training_data") or {}).get("yaml") or "")
    spec = load_data_yaml(base)  # DatasetError with the path when the base dataset is not there
    counts = {s: len(spec.images(s)) for s in spec.splits}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    plan = RetrainPlan(
        line_id,
        f"{card['name']}:{card['version']}",
        pt,
        base,
        counts,
        datasets_dir / f"retrain-{line_id}-{stamp}",
        epochs,
    )
    plan.input_kind = str(card.get("input", "image"))
    for item in reviewed(store, line_id):
        if not store.evidence.path(item.evidence_sha256).is_file():
            plan.missing_evidence += 1
            continue
        plan.reviewed += 1
        plan.corrected += int(item.corrected)
        plan.verdicts[item.outcome.value] += 1
        plan.boxes.update(b.class_name for b in item.boxes if not b.rejected)
    return plan


def write_dataset(plan: RetrainPlan, store: InspectionStore, names: tuple[str, ...]) -> dict[str, Any]:
    """The dataset version of ``plan`` (atomic: all or nothing); returns its card."""
    if plan.input_kind != "image":
        raise DatasetError("retrain: reference models need the golden planes of each board, not yet kept with it")
    writer = YoloDatasetWriter(plan.out, names)
    ids = []
    for item in reviewed(store, plan.line_id):
        path = store.evidence.path(item.evidence_sha256)
        if not path.is_file():
            continue
        boxes = [Box(b.x1, b.y1, b.x2, b.y2, names.index(b.class_name)) for b in item.boxes if not b.rejected]
        writer.add("train", f"qa-{item.id}.jpg", None, (item.crop_width, item.crop_height), boxes, source=path)
        ids.append(item.id)
    base = load_data_yaml(plan.base_data)
    for split in ("train", "val"):  # the base images join by link: one copy on disk
        for image in base.images(split):
            writer.link(split, f"base-{image.name}", image, base.labels_for(image))
    source = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
    extra = {"line_id": plan.line_id, "base_dataset": str(plan.base_data), "reviewed_inspections": len(ids)}
    return writer.commit(source, extra)
