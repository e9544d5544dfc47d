"""Every event twinspect produces, made in one place: its ``sync.schemas`` data model, its source URI, its draft.

Producers (the engine's recorder, the review and line-recipe routes, drift checks) call these
functions with their typed values; each builds the schema's pydantic model (validated when it
is made) and turns it into a ``Draft`` for the log. The source URI of every producer is
``source_uri(edge_id, ...)``: ``/twinspect/<edge>`` for the line, ``/<camera>`` under it for
a camera, ``/qa`` for reviews.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from camera.source import SourceStats
from inspection.pipeline.events import Inspected, LineState, LineStateChanged, PartEntered, PartExited, PartUninspected
from inspection.pipeline.recording import ModelInfo
from inspection.pipeline.verdict import Verdict
from inspection.qa.review import ReviewPlan
from inspection.store import InspectionRecord
from sync.events import Draft, rfc3339
from sync.schemas import (
    DATA_MODELS,
    CameraStateData,
    CropSize,
    DefectBox,
    Difference,
    LineRecipeChangedData,
    LineStateData,
    ModelActivatedData,
    ModelAlertData,
    ModelRef,
    ModelRegisteredData,
    ModelRolledBackData,
    ModelShadowStartedData,
    PartEnteredData,
    PartExitedData,
    PartInspectedData,
    PartUninspectedData,
    ProcessDriftData,
    ProcessInControlData,
    RejectLateData,
    ReviewCorrectedData,
    TwinDriftData,
)


def source_uri(edge_id: str, *path: str) -> str:
    """The CloudEvents source of a producer on edge ``edge_id``: ``/twinspect/edge-1/cam1``, ``.../qa``."""
    return "/".join(["", "twinspect", edge_id, *path])


def draft(
    kind: str, line_id: str, source: str, data: BaseModel, subject: str | None = None, time: str | None = None
) -> Draft:
    """The draft of one event whose data is its schema model (the model of ``kind``, nothing else)."""
    if not isinstance(data, DATA_MODELS[kind]):
        raise TypeError(f"{kind} carries {DATA_MODELS[kind].__name__}, got {type(data).__name__}")
    return Draft(kind, line_id, source, data.model_dump(mode="json"), subject=subject, time=time or rfc3339())


def _box(xyxy: Any) -> list[float]:
    return [round(float(v), 1) for v in list(xyxy)[:4]]


# -- the engine's events ----------------------------------------------------------------------------
def line_event(event: PartEntered | PartExited | PartUninspected, line_id: str, edge_id: str) -> Draft:
    """part.entered / part.exited / part.uninspected, stamped now (simulated frame times are media times)."""
    data: BaseModel
    if isinstance(event, PartEntered):
        data = PartEnteredData(
            part_id=event.part_id,
            camera_id=event.camera_id,
            track_id=int(event.track_id),
            box=_box(event.board_xyxy),
            frame_seq=int(event.frame_seq),
        )
    elif isinstance(event, PartExited):
        data = PartExitedData(
            part_id=event.part_id, camera_id=event.camera_id, inspected=event.inspected, frame_seq=int(event.frame_seq)
        )
    else:
        data = PartUninspectedData(
            part_id=event.part_id, camera_id=event.camera_id, reason=event.reason, frame_seq=int(event.frame_seq)
        )
    return draft(event.event_type, line_id, source_uri(edge_id, event.camera_id), data, event.part_id)


def line_state(
    event: LineStateChanged, line: LineState, cameras: Mapping[str, LineState], line_id: str, edge_id: str
) -> Draft:
    """line.started / line.stopped: the line is now ``line``, as ``event``'s camera saw it change."""
    data = LineStateData(
        camera_id=event.camera_id,
        frame_seq=int(event.frame_seq),
        cameras={k: v.value for k, v in sorted(cameras.items())},
    )
    kind = "line.started" if line is LineState.RUNNING else "line.stopped"
    return draft(kind, line_id, source_uri(edge_id), data)


def line_halted(cameras: Mapping[str, LineState], reason: str, line_id: str, edge_id: str) -> Draft:
    """line.stopped made by the edge itself: ``reason`` shutdown (a clean stop) or unclean_shutdown (found at start)."""
    data = LineStateData(
        camera_id="",
        frame_seq=0,
        cameras={k: v.value for k, v in sorted(cameras.items())},
        reason=reason,  # type: ignore[arg-type]
    )
    return draft("line.stopped", line_id, source_uri(edge_id), data)


def camera_halted(camera_id: str, reason: str, line_id: str, edge_id: str) -> Draft:
    """camera.offline for a camera the twin still showed online when the edge started (its last run crashed)."""
    data = CameraStateData(camera_id=camera_id, state="stopped", last_error=reason)
    return draft("camera.offline", line_id, source_uri(edge_id, camera_id), data)


def _reference(verdict: Verdict) -> dict[str, Any]:
    """The golden-reference fields of part.inspected (all None without a golden)."""
    ref = verdict.reference
    if ref is None:
        return {"recipe": None, "golden_sha256": None, "alignment_score": None}
    score = float(ref.alignment_score)
    return {
        "recipe": ref.recipe,
        "golden_sha256": ref.golden_sha256,
        "alignment_score": round(score, 4) if math.isfinite(score) else None,
    }


def part_inspected(
    done: Inspected, record: InspectionRecord | None, model: ModelInfo | None, line_id: str, edge_id: str
) -> Draft:
    """part.inspected of a finished board (with its stored row, if any), at the frame's capture time."""
    v = done.verdict
    data = PartInspectedData(
        part_id=v.part_id,
        camera_id=v.camera_id,
        track_id=int(v.track_id),
        inspection_id=record.id if record else None,
        verdict=v.outcome.value,
        defects=[DefectBox(**box) for box in v.defects.boxes_json()],
        reasons=list(v.reasons),
        board_box=_box(v.board_xyxy),
        frame_seq=int(v.frame_seq),
        latency_ms=round(done.latency_s * 1000.0, 2),
        model=ModelRef(name=model.name, version=model.version) if model else None,
        evidence_sha256=record.evidence_sha256 if record else None,
        crop=CropSize(width=record.crop_width, height=record.crop_height) if record else None,
        **_reference(v),
    )
    return draft("part.inspected", line_id, source_uri(edge_id, v.camera_id), data, v.part_id, rfc3339(done.t_wall))


def camera_state(camera_id: str, stats: SourceStats, online: bool, line_id: str, edge_id: str) -> Draft:
    data = CameraStateData(camera_id=camera_id, state=stats.state.value, last_error=stats.last_error)
    kind = "camera.online" if online else "camera.offline"
    return draft(kind, line_id, source_uri(edge_id, camera_id), data)


def model_activated(
    role: str,
    model: ModelInfo,
    line_id: str,
    edge_id: str,
    previous: str | None = None,
    changed_by: str | None = None,
    reason: str | None = None,
    forced: bool = False,
) -> Draft:
    data = ModelActivatedData(
        role=role,  # type: ignore[arg-type]
        name=model.name,
        version=model.version,
        previous=previous,
        changed_by=changed_by,
        reason=reason,
        forced=forced,
    )
    return draft("model.activated", line_id, source_uri(edge_id), data)


# -- model delivery: registry, shadow, rollback, the watch after a promotion -----------------------------
def model_registered(role: str, model: ModelInfo, kind: str, classes: list[str], line_id: str, edge_id: str) -> Draft:
    """model.registered: the line found a version it did not know in the registry (it serves nothing new)."""
    data = ModelRegisteredData(role=role, name=model.name, version=model.version, input=kind, classes=classes)  # type: ignore[arg-type]
    return draft("model.registered", line_id, source_uri(edge_id, "models"), data)


def model_shadow_started(
    role: str, model: ModelInfo, active: str | None, changed_by: str, reason: str | None, line_id: str, edge_id: str
) -> Draft:
    data = ModelShadowStartedData(
        role=role,  # type: ignore[arg-type]
        name=model.name,
        version=model.version,
        active=active,
        changed_by=changed_by,
        reason=reason,
    )
    return draft("model.shadow_started", line_id, source_uri(edge_id, "models"), data)


def model_rolled_back(
    role: str, model: ModelInfo, previous: str, changed_by: str, reason: str | None, line_id: str, edge_id: str
) -> Draft:
    """model.rolled_back: ``model`` is active again, ``previous`` no longer."""
    data = ModelRolledBackData(
        role=role,  # type: ignore[arg-type]
        name=model.name,
        version=model.version,
        previous=previous,
        changed_by=changed_by,
        reason=reason,
    )
    return draft("model.rolled_back", line_id, source_uri(edge_id, "models"), data)


def model_alert(line_id: str, edge_id: str, data: ModelAlertData) -> Draft:
    """model.alert: a rate changed significantly since the last promotion."""
    return draft("model.alert", line_id, source_uri(edge_id, "models"), data, f"{data.name}:{data.version}")


# -- the line's recipe, reviews, drift ----------------------------------------------------------------
def line_recipe_changed(
    line_id: str, source: str, recipe: str | None, previous: str | None, golden_sha256: str | None, changed_by: str
) -> Draft:
    """line.recipe_changed: the line's recipe (and golden) is now ``recipe``, was ``previous``."""
    data = LineRecipeChangedData(
        line_id=line_id, recipe=recipe, previous=previous, golden_sha256=golden_sha256, changed_by=changed_by
    )
    return draft("line.recipe_changed", line_id, source, data)


def review_corrected(plan: ReviewPlan, edge_id: str) -> Draft:
    """review.corrected of a review that changed a verdict: its live boxes after the review."""
    item = plan.inspection
    boxes = [
        DefectBox(xyxy=[round(v, 1) for v in b.xyxy], confidence=round(b.confidence, 4), class_name=b.class_name)
        for b in plan.boxes_after
        if not b.rejected
    ]
    data = ReviewCorrectedData(
        inspection_id=item.id,
        part_id=item.part_id,
        before=plan.before.value,
        after=plan.after.value,
        action=plan.action.value,
        reviewer=plan.reviewer.name,
        boxes=boxes,
        model_verdict=item.model_verdict.value,
        corrected=plan.corrected,
        was_corrected=plan.was_corrected,
    )
    return draft("review.corrected", item.line_id, source_uri(edge_id, "qa"), data, item.part_id)


def twin_drift(line_id: str, edge_id: str, differences: list[dict[str, Any]], expected: dict[str, Any]) -> Draft:
    """twin.drift: what a twin engine expected and what the cameras see differ."""
    data = TwinDriftData(differences=[Difference(**d) for d in differences], expected=expected)
    return draft("twin.drift", line_id, source_uri(edge_id), data)


# -- the line's integration: process control, the reject gate ------------------------------------------
def process_drift(line_id: str, edge_id: str, data: ProcessDriftData, time: str | None = None) -> Draft:
    """process.drift: a Western Electric rule fired on a control chart of the line."""
    return draft("process.drift", line_id, source_uri(edge_id, "spc"), data, data.chart, time)


def process_in_control(line_id: str, edge_id: str, data: ProcessInControlData, time: str | None = None) -> Draft:
    """process.in_control: a drifting chart is back in control (or learns a new baseline)."""
    return draft("process.in_control", line_id, source_uri(edge_id, "spc"), data, data.chart, time)


def reject_late(line_id: str, edge_id: str, data: RejectLateData) -> Draft:
    """reject.late: a board's decision would have reached the gate after the board; the fail-safe rule acted."""
    return draft("reject.late", line_id, source_uri(edge_id, "gate"), data, data.part_id)
