"""One table mapping package exceptions to HTTP responses with a reason."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from camera.errors import CameraError, FrameRejected, ImageError, UnknownCamera
from inspection.core.errors import DatasetError, InspectionError, ModelError, RulesError
from inspection.qa.review import InvalidReview, ReviewConflict, ReviewError
from inspection.reference.recipes import (
    GoldenNotFound,
    GoldenSizeMismatch,
    GoldenTooLarge,
    RecipeError,
    RecipeExists,
    RecipeNotFound,
)
from inspection.store.errors import (
    DuplicateInspectionError,
    EvidenceNotFoundError,
    InspectionNotFoundError,
    InvalidCursorError,
    StorageFullError,
    StoreUnavailableError,
)
from inspection.store.reviews import ConcurrentUpdate
from inspection.store.stats import StatsRangeError
from sync.errors import BadOffset, BrokerError, InvalidEvent, OffsetExpired, SyncError, UnknownEventType, UnknownLine


class NotFound(InspectionError):
    """An id in the URL names nothing."""


class Unauthorized(InspectionError):
    """Missing or wrong token."""


class Forbidden(InspectionError):
    """A valid token whose role may not do this, or a cookie request without its CSRF header."""


class Conflict(InspectionError):
    """The request does not fit this process's state (e.g. a line change asked of a hub, which runs no line)."""


class InvalidQuery(InspectionError):
    """A query parameter that parses but cannot be used (a time outside the range a database can store)."""


STATUS: list[tuple[type[Exception], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (RecipeNotFound, 404),
    (GoldenNotFound, 404),
    (RecipeExists, 409),
    (GoldenSizeMismatch, 409),
    (GoldenTooLarge, 413),
    (RecipeError, 422),
    (InvalidQuery, 422),
    (InspectionNotFoundError, 404),
    (EvidenceNotFoundError, 404),
    (DuplicateInspectionError, 409),
    (InvalidCursorError, 400),
    (InvalidReview, 422),
    (ConcurrentUpdate, 409),
    (ReviewError, 400),
    (StatsRangeError, 422),
    (StorageFullError, 503),  # a write refused for lack of space (review, token): nothing was written, retry later
    (StoreUnavailableError, 503),
    (RulesError, 422),
    (UnknownCamera, 404),
    (Unauthorized, 401),
    (Forbidden, 403),
    (FrameRejected, 422),
    (ImageError, 422),
    (DatasetError, 422),
    (ModelError, 422),
    (CameraError, 409),
    (InspectionError, 400),
    (UnknownLine, 404),
    (UnknownEventType, 400),
    (BadOffset, 400),
    (OffsetExpired, 410),
    (InvalidEvent, 422),
    (BrokerError, 503),
    (SyncError, 400),
]


def install(app: FastAPI) -> None:
    """Register a handler for each package exception, most specific first."""

    def handler_for(status: int):  # type: ignore[no-untyped-def]
        async def handle(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc), "error": exc.__class__.__name__}, status_code=status)

        return handle

    for exc_type, status in STATUS:
        app.add_exception_handler(exc_type, handler_for(status))
    app.add_exception_handler(ReviewConflict, _conflict)
    app.add_exception_handler(RequestValidationError, _invalid)


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    """409 with the inspection's current state, so the client can show what the other reviewer did."""
    current = exc.current if isinstance(exc, ReviewConflict) else None
    return JSONResponse({"detail": str(exc), "error": exc.__class__.__name__, "current": current}, status_code=409)


MAX_PROBLEMS = 20  # a 422 names at most this many problems


def validation_problems(errors: list[Any]) -> list[dict[str, Any]]:
    """Location, message and type of each problem, never the input (it may be huge or hostile), bounded."""
    out = [
        {
            "loc": [part if isinstance(part, int) else str(part)[:64] for part in error.get("loc", ())],
            "msg": str(error.get("msg", ""))[:300],
            "type": str(error.get("type", "")),
        }
        for error in errors[:MAX_PROBLEMS]
    ]
    if len(errors) > MAX_PROBLEMS:
        out.append({"loc": [], "msg": f"and {len(errors) - MAX_PROBLEMS} more problems", "type": "too_many_errors"})
    return out


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse(
        {"detail": validation_problems(list(errors)), "error": "RequestValidationError"}, status_code=422
    )
