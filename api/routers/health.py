"""Probes for supervisors and container platforms: ``GET /healthz`` (liveness) and ``GET /readyz`` (readiness).

``/healthz`` answers 200 while the process serves HTTP and every model's inference threads
run; 503 when a model's threads died (a restart is what helps). It touches no database.

``/readyz`` answers 200 while the service can do its work, 503 with the reasons while not:
while storage refuses writes (evidence files or inspection rows: a full disk, a database that
cannot be written), while the event log cannot commit, while the database cannot be read, or
while a model is not loaded (its inference threads do not run). It recovers by itself: the
first write that works clears the fault. Its body also has ``models`` (role -> loaded) and
``cameras`` (id -> state, online): a camera that is offline is shown, never a reason to be
unready (a push camera waits for its first frame; the review UI works without cameras).

Both are public (no token), like any probe a load balancer or orchestrator sends; they
report component names, states and reasons, never data.
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
STARTED = time.monotonic()


def _database(engine: Engine) -> str | None:
    """Why the database cannot be read right now (None: it can)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # any failure means not ready; the reason is what the probe shows
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".strip()
    return None


def readiness(services: Services) -> dict[str, Any]:
    """The engine's models (role -> loaded) and cameras (id -> state); empty without an engine (a hub)."""
    view = getattr(services.engine, "readiness", None)  # a view without it (tests' stubs) reports none
    found = view() if callable(view) else {}
    return {"models": dict(found.get("models", {})), "cameras": dict(found.get("cameras", {}))}


def _model_faults(checks: dict[str, Any]) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {"component": f"model:{role}", "reason": "not loaded: its inference threads do not run", "since": now}
        for role, loaded in sorted(checks["models"].items())
        if not loaded
    ]


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
    services = request.app.state.services
    checks = readiness(services)
    found = faults(services) + _model_faults(checks)
    if not found:
        return JSONResponse({"ready": True, "faults": [], **checks}, headers=NO_STORE)
    detail = "; ".join(f"{f['component']}: {f['reason']}" for f in found)
    return JSONResponse(
        {"ready": False, "detail": f"not ready: {detail}", "faults": found, **checks},
        status_code=503,
        headers=NO_STORE,
    )


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    found = _model_faults(readiness(request.app.state.services))
    body: dict[str, Any] = {"alive": not found, "uptime_s": round(time.monotonic() - STARTED, 1)}
    if found:
        body["detail"] = "; ".join(f"{f['component']}: {f['reason']}" for f in found)
    return JSONResponse(body, status_code=503 if found else 200, headers=NO_STORE)
