"""The web pages served by the app (no front-end build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parents[1] / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
def live_page() -> FileResponse:
    return FileResponse(STATIC / "live.html")
