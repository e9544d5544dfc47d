"""HTTP push: a camera POSTs JPEG/PNG frames with its camera token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel

from api.errors import Forbidden, Unauthorized
from api.tokens import Role
from camera.errors import FrameRejected

router = APIRouter(prefix="/api/v1/cameras", tags=["cameras"])


class PushAccepted(BaseModel):
    camera_id: str
    seq: int


@router.post("/{camera_id}/frames", status_code=202, response_model=PushAccepted,
             summary="Push one JPEG or PNG frame (body: the image bytes)",
             openapi_extra={"requestBody": {"content": {"image/jpeg": {}, "image/png": {}}, "required": True}})
async def push_frame(camera_id: str, request: Request,
                     authorization: Annotated[str | None, Header()] = None,
                     content_type: Annotated[str | None, Header()] = None) -> PushAccepted:
    services = request.app.state.services
    token = authorization.removeprefix("Bearer ").strip() if authorization else None
    if services.engine is None:
        raise Unauthorized("this process runs no cameras")
    if not services.engine.camera_token_ok(camera_id, token):
        principal = services.tokens.verify(token)
        if principal is None:
            raise Unauthorized(f"camera {camera_id!r}: missing or wrong camera token; send its camera token or an "
                               "API token with the camera role (Authorization: Bearer ...)")
        if principal.role not in (Role.CAMERA, Role.ADMIN):
            raise Forbidden(f"role {principal.role.value!r} may not push frames; it needs camera or admin")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > services.max_push_bytes:
        raise FrameRejected(f"body of {declared} bytes is over the limit of {services.max_push_bytes}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > services.max_push_bytes:
            raise FrameRejected(f"body is over the limit of {services.max_push_bytes} bytes")
    seq = services.engine.push(camera_id, bytes(body), content_type)
    return PushAccepted(camera_id=camera_id, seq=seq)
