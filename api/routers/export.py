"""Reviewed inspections as a YOLO dataset (zip) for retraining; the ``ml`` role.

The labels are the boxes after review: rejected boxes are dropped, relabels applied, boxes
a reviewer added included. Images are the stored evidence crops. The zip holds
``data.yaml`` (names in class order), ``images/train``, ``labels/train``, and the dataset
card (``card.json``, ``CARD.md``) with the counts.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import zipfile
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from api.auth import require
from api.errors import NotFound
from api.routers.inspections import Line, Since, Until, class_names, inspection_store, utc
from api.schemas_qa import ReviewStatusName
from api.tokens import Role
from inspection.ml.datasets.yolo import Box, YoloDatasetWriter
from inspection.store import InspectionFilter, InspectionStore, ReviewStatus, StoredInspection

router = APIRouter(prefix="/api/v1", tags=["export"])
REVIEWED = (ReviewStatus.CONFIRMED, ReviewStatus.REJECTED, ReviewStatus.CORRECTED)


def _labels(item: StoredInspection, names: tuple[str, ...]) -> tuple[list[Box], int]:
    """YOLO boxes of the live boxes, clipped to the crop; and how many had a class outside ``names``."""
    boxes, skipped = [], 0
    w, h = item.crop_width, item.crop_height
    for b in item.live_boxes:
        if b.class_name not in names:
            skipped += 1
            continue
        x1, y1, x2, y2 = max(0.0, b.x1), max(0.0, b.y1), min(float(w), b.x2), min(float(h), b.y2)
        if x2 > x1 and y2 > y1:
            boxes.append(Box(x1, y1, x2, y2, names.index(b.class_name)))
    return boxes, skipped


def write_dataset(
    store: InspectionStore, flt: InspectionFilter, statuses: tuple[ReviewStatus, ...], names: tuple[str, ...], out: Path
) -> dict[str, Any]:
    """Write the YOLO dataset of the selected inspections to ``out``; returns its card."""
    writer = YoloDatasetWriter(out, names)
    digest, by_status, skipped = hashlib.sha256(), Counter[str](), 0
    try:
        for status in statuses:
            for item in store.iterate(replace(flt, review_status=status)):
                boxes, unknown = _labels(item, names)
                skipped += unknown
                writer.add(
                    "train",
                    f"{item.id}.jpg",
                    store.evidence.get(item.evidence_sha256),
                    (item.crop_width, item.crop_height),
                    boxes,
                )
                digest.update(f"{item.id}:{item.version}\n".encode())
                by_status[status.value] += 1
    except BaseException:
        writer.abort()
        raise
    if not by_status:
        writer.abort()
        raise NotFound("no inspections match: nothing to export (only reviewed ones are exported by default)")
    extra = {
        "name": "twinspect-reviewed",
        "source": "twinspect QA review export",
        "created_at": datetime.now(UTC).isoformat(),
        "inspections": sum(by_status.values()),
        "by_review_status": dict(by_status),
        "boxes_with_unknown_class": skipped,
        "filters": {
            "line": flt.line_id,
            "from": flt.created_from and flt.created_from.isoformat(),
            "to": flt.created_before and flt.created_before.isoformat(),
            "review_status": [s.value for s in statuses],
        },
    }
    return writer.commit(digest.hexdigest(), extra)


def _zip(folder: Path, dest: Path) -> None:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())


@router.get(
    "/export",
    response_class=FileResponse,
    dependencies=[Depends(require(Role.ML))],
    responses={200: {"content": {"application/zip": {}}}, 404: {"description": "Nothing to export"}},
    summary="Reviewed inspections as a YOLO dataset (zip with data.yaml)",
)
def export(
    request: Request,
    review_status: Annotated[
        ReviewStatusName | None,
        Query(description="Only this review status; default: every reviewed one (not pending)."),
    ] = None,
    line: Line = None,
    since: Since = None,
    until: Until = None,
) -> FileResponse:
    store = inspection_store(request)
    statuses = (ReviewStatus(review_status),) if review_status else REVIEWED
    flt = InspectionFilter(line_id=line, created_from=utc(since), created_before=utc(until))
    tmp = Path(tempfile.mkdtemp(prefix="twinspect-export-"))
    try:
        write_dataset(store, flt, statuses, class_names(request), tmp / "dataset")
        _zip(tmp / "dataset", tmp / "dataset.zip")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return FileResponse(
        tmp / "dataset.zip",
        media_type="application/zip",
        filename=f"twinspect-reviewed-{stamp}.zip",
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )
