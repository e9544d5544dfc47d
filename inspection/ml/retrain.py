"""Retraining from QA: the line's reviewed inspections (with their corrections) plus the base dataset.

``plan_retrain`` counts what a retrain would use and writes nothing (``twinspect retrain
--dry-run`` prints it); ``write_dataset`` makes the dataset version: the reviewed evidence
crops with their boxes after review (rejected boxes left out, relabelled and drawn ones in),
added to the base dataset's training split; the validation split stays the base one, the
gate set the candidate is judged on. The card records the inspections it took (their ids'
sha256), the base dataset and the counts.

For a reference model (card ``"input": "reference"``) each reviewed board becomes the 3-plane
input the engine fed the model: its evidence is the board the engine registered to the golden
(golden pixels, brightness matched; the boxes, the model's and QA's, are in those pixels), so
the board plane is the evidence and the golden plane the golden file it names by sha256, composed by
:func:`inspection.reference.planes.compose` as the engine composes them, and written as PNG with the
boxes as they are. A board is left out, and counted, when its golden is not there (no sha256,
no file, a file that does not decode) or when the engine could not align it (its evidence is the
raw crop, unregistered, and so are any boxes QA drew on it). A reference model retrains on a
reference base dataset only, a plain one on a plain one.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from camera.errors import ImageError
from inspection.core.errors import DatasetError, ModelError
from inspection.inference.cards import read_card
from inspection.ml.datasets.yolo import Box, YoloDatasetWriter, load_data_yaml, png_bytes
from inspection.ml.images import read_image
from inspection.reference.align import ALIGNMENT_FAILED
from inspection.reference.goldens import GoldenFiles
from inspection.reference.planes import compose
from inspection.reference.recipes import RecipeError
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
    goldens: Path | None = None  # the goldens folder (reference models: each board's golden by sha256)
    without_golden: int = 0  # reference models: boards left out, their golden image not there
    alignment_failed: int = 0  # reference models: boards left out, the engine could not align them

    def lines(self) -> list[str]:
        """The plan as the CLI prints it."""
        base = self.base_counts
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted(self.verdicts.items()))
        boxes = ", ".join(f"{k} {v}" for k, v in sorted(self.boxes.items())) or "none"
        out = [
            f"retrain plan for line {self.line_id} (active {self.active}, input {self.input_kind})",
            f"  reviewed inspections: {self.reviewed} ({verdicts}; {self.corrected} corrected by QA; "
            f"{self.missing_evidence} without evidence, left out)",
        ]
        if self.input_kind == "reference":
            out.append(
                f"  reference input (board registered to its golden, golden, difference): "
                f"{self.without_golden} without their golden image and {self.alignment_failed} "
                f"the engine could not align, left out"
            )
        out += [
            f"  their boxes after review: {sum(self.boxes.values())} ({boxes})",
            f"  base dataset {self.base_data}: train {base.get('train', '?')} images, "
            f"val {base.get('val', '?')} images",
            f"  dataset version: {self.out}",
            f"  train {self.epochs} epochs resuming from {self.resume_from}",
        ]
        return out + [f"  step {i}: {s}" for i, s in enumerate(STEPS, 1)]


class GoldenCache:
    """Golden images by sha256, decoded grey as the engine reads them: a few kept, and every size seen."""

    def __init__(self, files: GoldenFiles | None, keep: int = 8) -> None:
        self.files = files
        self.keep = keep
        self._grey: OrderedDict[str, np.ndarray | None] = OrderedDict()
        self._sizes: dict[str, tuple[int, int] | None] = {}

    def grey(self, sha256: str) -> np.ndarray | None:
        """The golden's grey pixels; None when it is not there (no goldens folder, no file, corrupt)."""
        if sha256 in self._grey:
            self._grey.move_to_end(sha256)
            return self._grey[sha256]
        image = None
        if self.files is not None:
            try:
                image = self.files.grey(sha256)
            except RecipeError:
                image = None
        self._grey[sha256] = image
        self._sizes[sha256] = None if image is None else (int(image.shape[1]), int(image.shape[0]))
        while len(self._grey) > self.keep:
            self._grey.popitem(last=False)
        return image

    def size(self, sha256: str) -> tuple[int, int] | None:
        """(width, height) of the golden; None when it is not there."""
        if sha256 not in self._sizes:
            self.grey(sha256)
        return self._sizes[sha256]


def left_out(item: StoredInspection, goldens: GoldenCache) -> str:
    """Why a reviewed reference inspection cannot become a model input: 'golden', 'alignment', or '' (it can).

    Its evidence is the board in golden pixels when the engine aligned it (no alignment-failed reason),
    whether or not the model then ran; a board from before that, or of another golden size, is left out.
    """
    size = goldens.size(item.golden_sha256) if item.golden_sha256 else None
    if size is None:
        return "golden"
    if any(ALIGNMENT_FAILED in r for r in item.reasons):
        return "alignment"
    return "" if (item.crop_width, item.crop_height) == size else "alignment"


def reference_input(evidence: Path, golden: np.ndarray) -> np.ndarray | None:
    """The engine's model input of a registered board: compose(board in golden pixels, golden); None if they differ."""
    board = read_image(evidence)
    if board.shape[:2] != golden.shape[:2]:
        return None
    return compose(board, golden)


def reviewed_reference_input(
    item: StoredInspection, evidence: Path, goldens: GoldenCache
) -> tuple[np.ndarray | None, str]:
    """A reviewed board as a reference model saw it, or None and why not: 'golden', 'alignment' or 'evidence'."""
    why = left_out(item, goldens)
    golden = goldens.grey(item.golden_sha256) if not why and item.golden_sha256 else None
    if golden is None:
        return None, why or "golden"
    try:
        image = reference_input(evidence, golden)
    except ImageError:  # a damaged evidence file
        return None, "evidence"
    return (image, "") if image is not None else (None, "alignment")


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
    store: InspectionStore,
    line_id: str,
    active_folder: Path,
    datasets_dir: Path,
    epochs: int,
    data: Path | None = None,
    *,
    goldens: Path | None = None,
) -> RetrainPlan:
    """What a retrain of the line would take (nothing is written); ModelError / DatasetError when it cannot run.

    ``goldens``: the goldens folder, where a reference model's boards find their golden images.
    """
    card = read_card(active_folder)
    pt = active_folder / "model.pt"
    if not pt.is_file():
        raise ModelError(f"{active_folder}: no model.pt to resume training from")
    base = Path(data or (card.get("training_data") or {}).get("yaml") or "")
    spec = load_data_yaml(base)  # DatasetError with the path when the base dataset is not there
    kind = str(card.get("input", "image"))
    if spec.input != kind:
        raise DatasetError(
            f"retrain: the active model {card['name']}:{card['version']} takes '{kind}' input but the base "
            f"dataset {base} holds '{spec.input}' images; give a base dataset of '{kind}' input (--data)"
        )
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
        input_kind=kind,
        goldens=goldens,
    )
    cache = GoldenCache(GoldenFiles(goldens) if goldens is not None else None)
    for item in reviewed(store, line_id):
        if not store.evidence.path(item.evidence_sha256).is_file():
            plan.missing_evidence += 1
            continue
        why = left_out(item, cache) if kind == "reference" else ""
        if why:
            plan.without_golden += why == "golden"
            plan.alignment_failed += why == "alignment"
            continue
        plan.reviewed += 1
        plan.corrected += int(item.corrected)
        plan.verdicts[item.outcome.value] += 1
        plan.boxes.update(b.class_name for b in item.boxes if not b.rejected)
    return plan


def write_dataset(plan: RetrainPlan, store: InspectionStore, names: tuple[str, ...]) -> dict[str, Any]:
    """The dataset version of ``plan`` (atomic: all or nothing); returns its card."""
    kind = plan.input_kind
    writer = YoloDatasetWriter(plan.out, names, extra_yaml={"input": kind})
    try:
        ids, skipped = _add_reviewed(writer, plan, store, names)
        base = load_data_yaml(plan.base_data)
        for split in ("train", "val"):  # the base images join by link: one copy on disk
            for image in base.images(split):
                writer.link(split, f"base-{image.name}", image, base.labels_for(image))
        source = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
        extra: dict[str, Any] = {
            "name": plan.out.name,
            "input": kind,
            "line_id": plan.line_id,
            "base_dataset": str(plan.base_data),
            "reviewed_inspections": len(ids),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if kind == "reference":
            extra |= {
                "without_golden": skipped["golden"],
                "alignment_failed": skipped["alignment"],
                "unreadable_evidence": skipped["evidence"],
            }
        return writer.commit(source, extra)
    except BaseException:
        writer.abort()
        raise


def _add_reviewed(
    writer: YoloDatasetWriter, plan: RetrainPlan, store: InspectionStore, names: tuple[str, ...]
) -> tuple[list[str], Counter[str]]:
    """Each reviewed board of the line into the training split; (the ids taken, the reasons left out)."""
    reference = plan.input_kind == "reference"
    cache = GoldenCache(GoldenFiles(plan.goldens) if plan.goldens is not None else None)
    ids: list[str] = []
    skipped: Counter[str] = Counter()
    for item in reviewed(store, plan.line_id):
        path = store.evidence.path(item.evidence_sha256)
        if not path.is_file():
            continue
        boxes = [Box(b.x1, b.y1, b.x2, b.y2, names.index(b.class_name)) for b in item.boxes if not b.rejected]
        size = (item.crop_width, item.crop_height)
        if not reference:
            writer.add("train", f"qa-{item.id}.jpg", None, size, boxes, source=path)
            ids.append(item.id)
            continue
        image, why = reviewed_reference_input(item, path, cache)
        if image is None:
            skipped[why] += 1
            continue
        writer.add("train", f"qa-{item.id}.png", png_bytes(image), size, boxes)
        ids.append(item.id)
    return ids, skipped
