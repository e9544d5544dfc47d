"""The twin of each line (Ditto-shaped, with a revision), its history, drift reports, event schemas."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.auth import READERS, require
from api.errors import NotFound
from api.tokens import Role
from sync.connectivity import with_lease
from sync.drafts import twin_drift
from sync.events import EVENT_TYPES, check_type
from sync.schemas import all_schemas, event_schema
from sync.service import SyncService

router = APIRouter(prefix="/api/v1", tags=["twin"])
readers = [Depends(require(*READERS))]


def _sync(request: Request) -> SyncService:
    sync = request.app.state.services.sync
    if sync is None:
        raise NotFound("this process keeps no event log or twin")
    return sync  # type: ignore[no-any-return]


@router.get("/twin", summary="Lines with a twin, and their revisions", dependencies=readers)
def lines(request: Request) -> dict[str, Any]:
    sync = _sync(request)
    twins = sync.twins
    out = []
    for line in twins.lines():
        item: dict[str, Any] = {"line_id": line, "revision": twins.revision(line), "href": f"/api/v1/twin/{line}"}
        lease = sync.leases(line) if sync.leases is not None else None
        if lease is not None:  # a hub: is the edge that feeds the line up (its lease not over)?
            item["edge"] = {"edgeId": lease.edge_id, "connected": lease.connected()}
        out.append(item)
    return {"lines": out}


@router.get(
    "/twin/{line}",
    summary="The twin document of a line (ETag = revision; ?at=REVISION rebuilds the past; on a hub, "
    "the live document also carries the edge's connectivity lease)",
    responses={200: {"content": {"application/json": {}}}, 304: {"description": "Not modified"}},
    dependencies=readers,
)
def twin(
    line: str,
    request: Request,
    at: Annotated[int | None, Query(ge=0, description="Revision to rebuild.")] = None,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
) -> Response:
    sync = _sync(request)
    twins = sync.twins
    revision, text = twins.document_text(line)
    etag = f'"{revision}"'
    if at is not None:
        revision, text = at, twins.document_at(line, at)
        etag = f'"{revision}"'
    elif sync.leases is not None and (lease := sync.leases(line)) is not None:
        text = with_lease(text, lease)  # live state, not from events: it takes part in the ETag
        etag = f'"{revision}.{int(lease.ready_until * 1000)}"'
    if if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(text, media_type="application/json", headers={"ETag": etag, "Cache-Control": "no-cache"})


MAX_CAMERAS = 64  # boards_in_view entries: everything here ends up in a twin.drift event, so all of it is bounded
MAX_BOARDS = 10_000
MAX_THROUGHPUT = 1e6
CameraId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]  # camera/config.py


class ExpectedState(BaseModel):
    """What a twin engine expects the line to look like now; unset fields are not checked.

    Every value is bounded (it is written into the event log when it differs): finite numbers,
    at most MAX_CAMERAS cameras named like camera ids.
    """

    model_config = ConfigDict(extra="forbid")

    line_status: Literal["running", "stopped"] | None = Field(None, description="Expected line status.")
    boards_in_view: dict[CameraId, Annotated[int, Field(ge=0, le=MAX_BOARDS)]] | None = Field(
        None,
        max_length=MAX_CAMERAS,
        description=f"Boards expected in each camera's view, by camera id (at most "
        f"{MAX_CAMERAS} cameras, {MAX_BOARDS} boards each).",
    )
    throughput_per_min: float | None = Field(
        None, ge=0, le=MAX_THROUGHPUT, allow_inf_nan=False, description="Expected inspected parts per minute (finite)."
    )
    throughput_tolerance: float = Field(
        0.2, ge=0, le=10, allow_inf_nan=False, description="Relative tolerance of the throughput check."
    )


class DriftReport(BaseModel):
    drift: bool
    differences: list[dict[str, Any]]
    unchecked: list[str] = Field(description="Expected fields this process cannot observe (a hub sees no cameras).")
    offset: int | None = Field(description="Offset of the twin.drift event, when one was emitted.")


def _differences(
    expected: ExpectedState, doc: dict[str, Any], boards: dict[str, int] | None
) -> tuple[list[dict[str, Any]], list[str]]:
    diffs, unchecked = [], []
    status = doc["features"]["line"]["properties"]["status"]
    if expected.line_status is not None and expected.line_status != status:
        diffs.append({"field": "line_status", "expected": expected.line_status, "observed": status})
    if expected.throughput_per_min is not None:
        observed = doc["features"]["throughput"]["properties"]["partsPerMinute"]
        allowed = expected.throughput_per_min * expected.throughput_tolerance
        if abs(observed - expected.throughput_per_min) > allowed:
            diffs.append({"field": "throughput_per_min", "expected": expected.throughput_per_min, "observed": observed})
    if expected.boards_in_view is not None:
        if boards is None:
            unchecked.append("boards_in_view")
        else:
            for cam, n in sorted(expected.boards_in_view.items()):
                if cam not in boards:
                    diffs.append({"field": f"boards_in_view.{cam}", "expected": n, "observed": None})
                elif boards[cam] != n:
                    diffs.append({"field": f"boards_in_view.{cam}", "expected": n, "observed": boards[cam]})
    return diffs, unchecked


@router.post(
    "/twin/{line}/expected",
    summary="Compare a twin engine's expected state with what the cameras see",
    response_model=DriftReport,
    dependencies=[Depends(require(Role.TWIN))],
)
def expected_state(line: str, body: ExpectedState, request: Request) -> DriftReport:
    sync = _sync(request)
    _, text = sync.twins.document_text(line)
    engine = request.app.state.services.engine
    boards = engine.boards_in_view() if engine is not None else None
    diffs, unchecked = _differences(body, json.loads(text), boards)
    offset = None
    if diffs:
        drift = twin_drift(line, sync.settings.edge_id, diffs, body.model_dump(exclude_none=True))
        offset = sync.log.append([drift])[0].offset
    return DriftReport(drift=bool(diffs), differences=diffs, unchecked=unchecked, offset=offset)


@router.get("/schemas", summary="JSON Schema of every event type", tags=["events"], dependencies=readers)
def schemas() -> dict[str, Any]:
    return {"types": list(EVENT_TYPES), "schemas": all_schemas()}


@router.get("/schemas/{event_type}", summary="JSON Schema of one event type", tags=["events"], dependencies=readers)
def schema(event_type: str) -> JSONResponse:
    return JSONResponse(event_schema(check_type(event_type)))
