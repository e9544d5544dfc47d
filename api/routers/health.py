"""Readiness: ``GET /readyz`` answers 200 while the service can do its work, 503 with the reasons while not.

Not ready while storage refuses writes (evidence files or inspection rows: a full disk, a
database that cannot be written), while the event log cannot commit, or while the
database cannot be read. It recovers by itself: the first write that works clears the
fault. Public (no token), like any probe a load balancer or orchestrator sends; it
reports component names and reasons, never data.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

from api.services import Services

router = APIRouter(include_in_schema=False)

NO_STORE = {"Cache-Control": "no-store"}


def _database(engine: Engine) -> str | None:
    """Why the database cannot be read right now (None: it can)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # any failure means not ready; the reason is what the probe shows
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".strip()
    return None


def faults(services: Services) -> list[dict[str, Any]]:
    """Every current fault of the engine, the event log and the database, as JSON."""
    out: list[dict[str, Any]] = []
    view_faults = getattr(services.engine, "faults", None)  # a view without faults() has none to report
    if callable(view_faults):
        out += [{"component": f.component, "reason": f.reason, "since": f.since} for f in view_faults()]
    if services.sync is not None and not any(f["component"] == "event-log" for f in out):
        health = services.sync.log.health()
        if health.failing is not None:
            out.append({"component": "event-log", "reason": health.failing, "since": health.since})
    db = (
        services.sync.log.engine
        if services.sync is not None
        else services.inspections.engine
        if services.inspections is not None
        else None
    )
    reason = _database(db) if db is not None else None
    if reason is not None:
        out.append({"component": "database", "reason": reason, "since": time.time()})
    return out


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    found = faults(request.app.state.services)
    if not found:
        return JSONResponse({"ready": True, "faults": []}, headers=NO_STORE)
    detail = "; ".join(f"{f['component']}: {f['reason']}" for f in found)
    return JSONResponse(
        {"ready": False, "detail": f"not ready: {detail}", "faults": found}, status_code=503, headers=NO_STORE
    )
