"""JSON Schemas of every event type: the CloudEvents envelope plus that type's ``data``.

The pydantic models below are the single source; ``python -m sync.schemas`` writes
``sync/schemas/<type>.json`` (kept in the repo; a test checks they are current), and the
API serves them at ``/api/v1/schemas``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sync.events import EVENT_TYPES, TYPE_PREFIX

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
Verdict = Literal["pass", "fail", "uncertain"]
Box = list[float]


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow")


class DefectBox(BaseModel):
    xyxy: Box = Field(description="Box in board-crop pixels: x1, y1, x2, y2.", min_length=4, max_length=4)
    confidence: float = Field(ge=0, le=1)
    class_name: str


class PartEnteredData(_Data):
    part_id: str
    camera_id: str
    track_id: int
    box: Box = Field(description="First box seen, frame pixels.", min_length=4, max_length=4)
    frame_seq: int


class ModelRef(BaseModel):
    name: str
    version: str


class CropSize(BaseModel):
    width: int = Field(ge=1)
    height: int = Field(ge=1)


class PartInspectedData(_Data):
    part_id: str
    camera_id: str
    track_id: int
    inspection_id: str | None = Field(description="The stored inspection; null when not stored.")
    verdict: Verdict
    defects: list[DefectBox]
    reasons: list[str]
    board_box: Box = Field(min_length=4, max_length=4, description="Where the crop was taken, frame pixels.")
    frame_seq: int
    latency_ms: float = Field(description="Frame capture to verdict.")
    model: ModelRef | None
    evidence_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the evidence JPEG (the object's name in the evidence bucket); null when not stored.",
    )
    crop: CropSize | None = Field(None, description="Size of the board crop in pixels; null when not stored.")
    recipe: str | None = Field(
        None,
        max_length=100,
        description="Recipe (product) whose golden image the board was compared with; null without a golden.",
    )
    golden_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the golden image file (GET /api/v1/goldens/{sha256}); null without a golden.",
    )
    alignment_score: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="How well the board aligned to the golden (normalised "
        "correlation, 1 = identical); null when not measured.",
    )


class PartUninspectedData(_Data):
    part_id: str
    camera_id: str
    reason: str
    frame_seq: int


class PartExitedData(_Data):
    part_id: str
    camera_id: str
    inspected: bool
    frame_seq: int


class LineStateData(_Data):
    camera_id: str = Field(
        description="The camera whose observation changed the line state ('' when no camera did: see reason)."
    )
    frame_seq: int
    cameras: dict[str, Literal["unknown", "running", "stopped"]]
    reason: Literal["shutdown", "unclean_shutdown"] | None = Field(
        None,
        description="Why the edge, not a camera, changed the state: shutdown (it stopped cleanly: the line is "
        "no longer inspected), unclean_shutdown (at start it found its twin still running: the last run ended "
        "without a clean stop, a crash or a power cut). null: a camera saw the belt start or stop.",
    )


class CameraStateData(_Data):
    camera_id: str
    state: Literal["starting", "running", "reconnecting", "stopped"]
    last_error: str | None


class ReviewCorrectedData(_Data):
    inspection_id: str
    part_id: str
    before: Verdict
    after: Verdict
    action: str
    reviewer: str
    boxes: list[DefectBox] = Field(default_factory=list, description="Boxes after the review.")
    model_verdict: Verdict | None = Field(None, description="The verdict the model made (before any review).")
    corrected: bool | None = Field(
        None, description="After this review the final verdict differs from the model's (a correction)."
    )
    was_corrected: bool | None = Field(None, description="Whether it did before this review.")


class ModelActivatedData(_Data):
    role: Literal["defect", "part"]
    name: str
    version: str
    previous: str | None = Field(None, description="The version active before (NAME:VERSION); null: none.")
    changed_by: str | None = Field(None, description="Who: a token's name, cli:USER, or 'config' at a start.")
    reason: str | None = Field(None, max_length=2000, description="Why, as its author gave it.")
    forced: bool = Field(False, description="Promoted past a failed gate (admin, --force).")


class ModelRegisteredData(_Data):
    role: Literal["defect", "part"]
    name: str
    version: str
    input: Literal["image", "reference"] = Field(description="What the model takes: a board, or board + golden.")
    classes: list[str]


class ModelShadowStartedData(_Data):
    role: Literal["defect", "part"]
    name: str
    version: str
    active: str | None = Field(description="The active version it runs beside (NAME:VERSION).")
    changed_by: str
    reason: str | None = Field(None, max_length=2000)


class ModelRolledBackData(_Data):
    role: Literal["defect", "part"]
    name: str = Field(description="The model active again.")
    version: str
    previous: str = Field(description="The version rolled back from (NAME:VERSION).")
    changed_by: str
    reason: str | None = Field(None, max_length=2000)


class ModelAlertData(_Data):
    role: Literal["defect", "part"]
    name: str = Field(description="The model promoted last.")
    version: str
    previous: str = Field(description="The model it is compared with (NAME:VERSION).")
    metric: str = Field(max_length=100, description="'fail', 'uncertain', or 'corrected:CLASS' rate per board.")
    boards: int = Field(ge=1, description="Boards on each side of the comparison.")
    rate: float = Field(ge=0, le=1, description="The rate since the promotion.")
    previous_rate: float = Field(ge=0, le=1, description="The rate over the same number of boards before it.")
    test: str = Field(description="The test that found the change.")
    statistic: float
    p_value: float = Field(ge=0, le=1)
    threshold: float = Field(gt=0, lt=1, description="The p-value under which a change raises an alert.")


class LineRecipeChangedData(_Data):
    line_id: str
    recipe: str | None = Field(
        max_length=100,
        description="The recipe (product) every board is now compared with; null: none set for the whole line.",
    )
    previous: str | None = Field(description="The line's recipe before the change, as the twin knew it.")
    golden_sha256: str | None = Field(
        pattern=r"^[0-9a-f]{64}$", description="sha256 of the new recipe's golden image file; null without one."
    )
    changed_by: str = Field(
        description="Who changed it: a token's name, or 'config' when the engine started with "
        "another recipe than the twin last recorded."
    )


class Difference(BaseModel):
    field: str
    expected: Any
    observed: Any


class TwinDriftData(_Data):
    differences: list[Difference] = Field(min_length=1)
    expected: dict[str, Any]


class ChartPoint(BaseModel):
    index: int = Field(ge=1, description="Subgroup number on the chart (baseline included).")
    n: int = Field(ge=1, description="Boards in the subgroup.")
    count: int = Field(ge=0, description="Boards with the attribute (p-chart) or defects (u-chart).")
    value: float = Field(ge=0, description="count / n.")
    z: float = Field(description="(value - center) / sigma of this subgroup.")
    time: str = Field(description="Event time the subgroup closed.")


class ProcessDriftData(_Data):
    chart: str = Field(
        max_length=100,
        description="'fail' (share of failed boards), 'defects' (defects per "
        "board) or a defect class (share of boards with it).",
    )
    kind: Literal["p", "u"] = Field(description="p: proportion chart; u: defects per board.")
    rule: int = Field(ge=1, le=4, description="The Western Electric rule that fired first (1-4).")
    rules: list[int] = Field(description="Every rule that fired on the last point.")
    rule_text: str
    center: float = Field(ge=0, description="Centre line from the baseline.")
    ucl: float = Field(description="Upper control limit at the last point's subgroup size.")
    lcl: float = Field(description="Lower control limit at the last point's subgroup size.")
    points: list[ChartPoint] = Field(max_length=8, description="The points the rule looked at, oldest first.")


class ProcessInControlData(_Data):
    chart: str = Field(max_length=100)
    kind: Literal["p", "u"]
    reason: str = Field(max_length=200, description="Why it counts as in control again.")


class RejectLateData(_Data):
    part_id: str
    camera_id: str
    deadline: str = Field(description="When the decision had to leave for the board to meet the gate.")
    decided: str | None = Field(description="When the verdict came; null: it had not come by the deadline.")
    late_ms: float | None = Field(description="How late the verdict was; null when it had not come.")
    action: Literal["reject", "recheck"] = Field(description="What the gate was told to do: the fail-safe rule.")
    verdict: Verdict | None = Field(description="The verdict, when it came.")


DATA_MODELS: dict[str, type[BaseModel]] = {
    "part.entered": PartEnteredData,
    "part.inspected": PartInspectedData,
    "part.uninspected": PartUninspectedData,
    "part.exited": PartExitedData,
    "line.started": LineStateData,
    "line.stopped": LineStateData,
    "camera.online": CameraStateData,
    "camera.offline": CameraStateData,
    "review.corrected": ReviewCorrectedData,
    "model.activated": ModelActivatedData,
    "model.registered": ModelRegisteredData,
    "model.shadow_started": ModelShadowStartedData,
    "model.rolled_back": ModelRolledBackData,
    "model.alert": ModelAlertData,
    "twin.drift": TwinDriftData,
    "line.recipe_changed": LineRecipeChangedData,
    "process.drift": ProcessDriftData,
    "process.in_control": ProcessInControlData,
    "reject.late": RejectLateData,
}
assert set(DATA_MODELS) == set(EVENT_TYPES)


def event_schema(short_type: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) of one event type, envelope included."""
    data = DATA_MODELS[short_type].model_json_schema(ref_template="#/$defs/{model}")
    defs = data.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://twinspect.io/schemas/{short_type}.json",
        "title": TYPE_PREFIX + short_type,
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "datacontenttype", "lineid", "sequence", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "format": "uuid"},
            "source": {"type": "string", "minLength": 1},
            "type": {"const": TYPE_PREFIX + short_type},
            "time": {"type": "string", "format": "date-time"},
            "subject": {"type": "string"},
            "datacontenttype": {"const": "application/json"},
            "lineid": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"},
            "sequence": {
                "type": "integer",
                "minimum": 1,
                "description": "Position in the line's stream: strictly increasing, no gaps.",
            },
            "offset": {
                "type": "integer",
                "minimum": 1,
                "description": "Position in the serving log (feeds only; resume with it).",
            },
            "data": data,
        },
        "$defs": defs,
    }


def all_schemas() -> dict[str, dict[str, Any]]:
    return {t: event_schema(t) for t in EVENT_TYPES}


def write_schemas(folder: Path = SCHEMA_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for t, schema in all_schemas().items():
        path = folder / f"{t}.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        out.append(path)
    return out


if __name__ == "__main__":
    for p in write_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR):
        print(p)
