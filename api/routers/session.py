"""Sign in / out of the web UI, and API token management (admin)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from api.auth import CSRF_COOKIE, SESSION_COOKIE, authenticate, require, token_store
from api.errors import Unauthorized
from api.tokens import Principal, Role

router = APIRouter(prefix="/api/v1", tags=["auth"])


class SignIn(BaseModel):
    token: str = Field(min_length=1, max_length=200, description="An API token (tsp_...).")


class SessionInfo(BaseModel):
    name: str
    role: Role
    csrf: str | None = Field(None, description="Send it back in X-CSRF-Token on POST/DELETE made with the cookie.")
    token_id: str | None = Field(None, description="The token's id (who reviewed: the audit's actor_id).")


@router.post("/session", response_model=SessionInfo, summary="Sign in with a token (sets the session cookie)")
def sign_in(body: SignIn, request: Request, response: Response) -> SessionInfo:
    principal = token_store(request).verify(body.token)
    if principal is None:
        raise Unauthorized("unknown or revoked token")
    csrf = secrets.token_urlsafe(24)
    secure = request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, body.token, httponly=True, samesite="strict", secure=secure, path="/")
    response.set_cookie(CSRF_COOKIE, csrf, httponly=False, samesite="strict", secure=secure, path="/")
    return SessionInfo(name=principal.name, role=principal.role, csrf=csrf, token_id=principal.token_id)


@router.get("/session", response_model=SessionInfo, summary="Who is signed in")
def who(request: Request) -> SessionInfo:
    principal = authenticate(request)
    return SessionInfo(
        name=principal.name, role=principal.role, csrf=request.cookies.get(CSRF_COOKIE), token_id=principal.token_id
    )


@router.delete("/session", status_code=204, summary="Sign out (clears the cookies)")
def sign_out(request: Request, response: Response) -> Response:
    authenticate(request)  # a cross-site request cannot sign the user out either (CSRF check)
    out = Response(status_code=204)
    out.delete_cookie(SESSION_COOKIE, path="/")
    out.delete_cookie(CSRF_COOKIE, path="/")
    return out


class NewToken(BaseModel):
    role: Role
    name: str = Field(min_length=1, max_length=200)


class TokenOut(BaseModel):
    id: str
    name: str
    role: Role
    created_at: str
    revoked_at: str | None
    token: str | None = Field(None, description="The clear token: returned once, on creation only.")


Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


@router.get("/tokens", response_model=list[TokenOut], summary="Every API token (never the secrets)", tags=["auth"])
def list_tokens(request: Request, _: Admin) -> list[TokenOut]:
    return [
        TokenOut(
            id=t.id,
            name=t.name,
            role=t.role,
            created_at=t.created_at.isoformat(),
            revoked_at=t.revoked_at.isoformat() if t.revoked_at else None,
        )
        for t in token_store(request).all()
    ]


@router.post("/tokens", response_model=TokenOut, status_code=201, summary="Create a token")
def create_token(body: NewToken, request: Request, _: Admin) -> TokenOut:
    info, clear = token_store(request).create(body.role, body.name)
    return TokenOut(
        id=info.id, name=info.name, role=info.role, created_at=info.created_at.isoformat(), revoked_at=None, token=clear
    )


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke a token")
def revoke_token(token_id: str, request: Request, _: Admin) -> Response:
    token_store(request).revoke(token_id)
    return Response(status_code=204)
