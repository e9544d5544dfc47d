"""HTTP push: a camera POSTs JPEG/PNG frames with its camera token.

The token is checked before the body is read; the body is bounded by the camera's ``max_bytes``
(``api.limits`` refuses a larger one with 413 before the route runs); the frame is checked and
decoded in a worker thread (at most ``DECODE_THREADS`` at once), never on the event loop.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request
from pydantic import BaseModel

from api.auth import bearer
from api.errors import Forbidden, Unauthorized
from api.limits import push_limit
from api.services import Services
from api.tokens import Role
from camera.errors import FrameRejected

router = APIRouter(prefix="/api/v1/cameras", tags=["cameras"])


class PushAccepted(BaseModel):
    camera_id: str
    seq: int


async def _check_caller(services: Services, camera_id: str, token: str | None) -> None:
    """The camera's own token, or an API token with the camera (or admin) role."""
    if services.engine is None:
        raise Unauthorized("this process runs no cameras")
    if services.engine.camera_token_ok(camera_id, token):
        return
    principal = await anyio.to_thread.run_sync(services.tokens.verify, token) if services.tokens else None
    if principal is None:
        raise Unauthorized(
            f"camera {camera_id!r}: missing or wrong camera token; send its camera token or an "
            "API token with the camera role (Authorization: Bearer ...)"
        )
    if principal.role not in (Role.CAMERA, Role.ADMIN):
        raise Forbidden(f"role {principal.role.value!r} may not push frames; it needs camera or admin")


@router.post(
    "/{camera_id}/frames",
    status_code=202,
    response_model=PushAccepted,
    summary="Push one JPEG or PNG frame (body: the image bytes)",
    openapi_extra={"requestBody": {"content": {"image/jpeg": {}, "image/png": {}}, "required": True}},
)
async def push_frame(
    camera_id: str, request: Request, content_type: Annotated[str | None, Header()] = None
) -> PushAccepted:
    services: Services = request.app.state.services
    await _check_caller(services, camera_id, bearer(request))
    assert services.engine is not None
    limit = push_limit(services, camera_id)
    body = bytearray()
    async for chunk in request.stream():  # api.limits already bounds it; this keeps the route safe on its own
        body += chunk
        if len(body) > limit:
            raise FrameRejected(f"body is over the limit of {limit} bytes")
    seq = await anyio.to_thread.run_sync(
        services.engine.push, camera_id, bytes(body), content_type, limiter=request.app.state.decode_limiter
    )
    return PushAccepted(camera_id=camera_id, seq=seq)
