"""The web pages: static HTML shells (no front-end build step); their data come from the JSON API.

Each page's script asks ``GET /api/v1/session`` first and goes to ``/signin?next=...`` on a
401, so the shells themselves need no auth.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parents[1] / "static"
NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / f"{name}.html", media_type="text/html", headers=NO_CACHE)


@router.get("/signin")
def signin_page() -> FileResponse:
    return _page("signin")


@router.get("/")
def queue_page() -> FileResponse:
    return _page("queue")


@router.get("/review/{inspection_id}")
def review_page(inspection_id: str) -> FileResponse:
    return _page("review")


@router.get("/live")
def live_page() -> FileResponse:
    return _page("live")


@router.get("/dashboard")
def dashboard_page() -> FileResponse:
    return _page("dashboard")


@router.get("/models")
def models_page() -> FileResponse:
    return _page("models")
