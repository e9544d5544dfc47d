"""The live line view: status, latest annotated frame per camera, evidence of recent verdicts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.auth import READERS, require
from api.errors import NotFound

router = APIRouter(prefix="/api/v1/live", tags=["live"], dependencies=[Depends(require(*READERS))])

NO_CACHE = {"Cache-Control": "no-store"}


def _engine(request: Request) -> Any:
    engine = request.app.state.services.engine
    if engine is None:
        raise NotFound("this process runs no cameras (a hub): see /api/v1/twin and /api/v1/events")
    return engine


@router.get("/status", summary="Line state, counters, cameras and recent verdicts")
def status(request: Request) -> dict[str, Any]:
    return _engine(request).status()  # type: ignore[no-any-return]


@router.get(
    "/cameras/{camera_id}/frame.jpg",
    summary="Latest annotated frame of a camera",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def latest_frame(camera_id: str, request: Request) -> Response:
    data = _engine(request).latest_jpeg(camera_id)
    if data is None:
        raise NotFound(f"camera {camera_id!r}: unknown or no frame yet")
    return Response(data, media_type="image/jpeg", headers=NO_CACHE)


@router.get(
    "/parts/{part_id}/evidence.jpg",
    summary="Evidence crop of a recent verdict",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def evidence(part_id: str, request: Request) -> Response:
    data = _engine(request).evidence_jpeg(part_id)
    if data is None:
        raise NotFound(f"part {part_id!r}: no recent evidence")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})
