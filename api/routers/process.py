"""Process control and the line's outputs: the control charts of a line (dashboard), the outputs' figures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from api.auth import READERS, require

router = APIRouter(prefix="/api/v1", tags=["process"])


@router.get(
    "/lines/{line_id}/process",
    dependencies=[Depends(require(*READERS))],
    summary="The line's control charts (p per defect class and fail, u for defects per board), their limits "
    "and marked points, and the floor outputs' figures (reject gate slack, queues, drops)",
)
def process(line_id: Annotated[str, Path(description="The line this process runs.")], request: Request) -> Any:
    floor = request.app.state.services.floor
    if floor is None:
        return {"line_id": line_id, "enabled": False, "charts": [], "floor": {}}
    charts = floor.spc.charts(line_id) if floor.spc is not None else []
    return {
        "line_id": line_id,
        "enabled": floor.spc is not None,
        "charts": [c.json() for c in charts],
        "floor": floor.status(),
    }
