"""Who may call what: bearer tokens for programs, an HttpOnly session cookie for the web UI.

- Programs send ``Authorization: Bearer tsp_...``.
- The UI signs in once (``POST /api/v1/session`` with a token): the token goes into an
  HttpOnly, SameSite=Strict cookie that scripts cannot read, plus a CSRF cookie that
  they can. Every unsafe request made with the session cookie must echo the CSRF cookie
  in the ``X-CSRF-Token`` header (double submit), so another site cannot act for the user.
- ``require(*roles)`` is the dependency each router or route declares; ``admin`` passes
  every check.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Request, WebSocket

from api.errors import Forbidden, Unauthorized
from api.tokens import Principal, Role, TokenStore

SESSION_COOKIE = "twinspect_session"
CSRF_COOKIE = "twinspect_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

READERS = (Role.QA, Role.ML, Role.TWIN)  # read inspections, live view, twin, feeds (admin always passes)


def token_store(request: Request | WebSocket) -> TokenStore:
    return request.app.state.services.tokens  # type: ignore[no-any-return]


def bearer(request: Request | WebSocket) -> str | None:
    header = request.headers.get("authorization")
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def authenticate(request: Request | WebSocket) -> Principal:
    """The caller, from the bearer token or the session cookie (with its CSRF check)."""
    tokens = token_store(request)
    token = bearer(request)
    if token is not None:
        principal = tokens.verify(token)
        if principal is None:
            raise Unauthorized("the bearer token is unknown or revoked")
        return principal
    token = request.cookies.get(SESSION_COOKIE)
    if token is None:
        raise Unauthorized("sign in first: send Authorization: Bearer <token>, or sign in at /signin")
    principal = tokens.verify(token)
    if principal is None:
        raise Unauthorized("the session's token is unknown or revoked; sign in again at /signin")
    if isinstance(request, Request) and request.method not in SAFE_METHODS:
        sent, expected = request.headers.get(CSRF_HEADER, ""), request.cookies.get(CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(sent, expected):
            raise Forbidden(f"missing or wrong {CSRF_HEADER} header (it must repeat the {CSRF_COOKIE} cookie)")
    return principal


def require(*roles: Role) -> Callable[[Request], Principal]:
    """A dependency that lets through callers with one of ``roles`` (or admin)."""
    allowed = frozenset(roles) | {Role.ADMIN}
    names = ", ".join(sorted(r.value for r in allowed))

    def check(request: Request) -> Principal:
        principal = authenticate(request)
        if principal.role not in allowed:
            raise Forbidden(f"role {principal.role.value!r} may not do this; it needs one of: {names}")
        request.state.principal = principal
        return principal

    return check


def require_ws(websocket: WebSocket, *roles: Role) -> Principal:
    """``require`` for WebSocket routes (called inside the route, before accept)."""
    principal = authenticate(websocket)
    if principal.role not in frozenset(roles) | {Role.ADMIN}:
        raise Forbidden(f"role {principal.role.value!r} may not read this feed")
    return principal
