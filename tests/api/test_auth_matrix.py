"""Every route of the app against every role, no token and a revoked token.

The routes come from the app itself (``app.routes``; the OpenAPI docs and /static are
skipped), so a new route without a rule here fails ``test_every_route_has_a_rule``. A
caller is *allowed* when the answer is neither 401 nor 403 (a 404 or 400 after the role
check still proves the check let it through); a denied caller gets 403 for a valid token
of the wrong role and 401 for no token or a revoked one, always with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api.app import create_app
from api.tokens import Role
from inspection.core.outcome import Outcome
from tests.api.conftest import build_populated_app, dispose

ROLES = tuple(r.value for r in Role)
CALLERS = (*ROLES, "none", "revoked")
READERS = frozenset({"qa", "ml", "twin"})
QA_ML = frozenset({"qa", "ml"})
EVERY_ROLE = frozenset(ROLES)
PUBLIC = frozenset(CALLERS)
SKIPPED = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/static"}
CAMERA_SECRET = "door-secret"
RECIPE = "matrix-recipe"

# (method, path) -> roles allowed besides admin (admin passes every check)
RULES: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/v1/live/status"): READERS,
    ("GET", "/api/v1/live/cameras/{camera_id}/frame.jpg"): READERS,
    ("GET", "/api/v1/live/parts/{part_id}/evidence.jpg"): READERS,
    ("POST", "/api/v1/cameras/{camera_id}/frames"): frozenset({"camera"}),
    ("GET", "/metrics"): EVERY_ROLE,
    ("GET", "/api/v1/events"): READERS,
    ("GET", "/api/v1/events/stream"): READERS,
    ("WS", "/api/v1/events/ws"): READERS,
    ("GET", "/api/v1/twin"): READERS,
    ("GET", "/api/v1/twin/{line}"): READERS,
    ("GET", "/api/v1/lines/{line_id}/process"): READERS,
    ("POST", "/api/v1/twin/{line}/expected"): frozenset({"twin"}),
    ("GET", "/api/v1/schemas"): READERS,
    ("GET", "/api/v1/schemas/{event_type}"): READERS,
    ("POST", "/api/v1/session"): EVERY_ROLE,  # signs in with the token in the body
    ("GET", "/api/v1/session"): EVERY_ROLE,
    ("DELETE", "/api/v1/session"): EVERY_ROLE,
    ("GET", "/api/v1/tokens"): frozenset(),
    ("POST", "/api/v1/tokens"): frozenset(),
    ("DELETE", "/api/v1/tokens/{token_id}"): frozenset(),
    ("GET", "/api/v1/inspections"): QA_ML,
    ("GET", "/api/v1/inspections/{inspection_id}"): QA_ML,
    ("GET", "/api/v1/inspections/{inspection_id}/evidence.jpg"): QA_ML,
    ("GET", "/api/v1/inspections/{inspection_id}/audit"): QA_ML,
    ("POST", "/api/v1/inspections/{inspection_id}/review"): frozenset({"qa"}),
    ("GET", "/api/v1/inspections/count"): QA_ML,
    ("POST", "/api/v1/inspections/bulk-review"): frozenset({"qa"}),
    ("GET", "/api/v1/stats"): QA_ML,
    ("GET", "/api/v1/models"): QA_ML,
    ("GET", "/api/v1/models/lines"): QA_ML,
    ("GET", "/api/v1/models/lines/{line_id}"): QA_ML,
    ("GET", "/api/v1/models/lines/{line_id}/shadow-report"): QA_ML,
    ("GET", "/api/v1/models/lines/{line_id}/review-order"): QA_ML,
    ("POST", "/api/v1/models/lines/{line_id}/promote"): frozenset({"ml"}),
    ("POST", "/api/v1/models/lines/{line_id}/rollback"): frozenset({"ml"}),
    ("POST", "/api/v1/models/lines/{line_id}/shadow"): frozenset({"ml"}),
    ("GET", "/api/v1/export"): frozenset({"ml"}),
    ("GET", "/api/v1/recipes"): READERS,
    ("GET", "/api/v1/recipes/{name}"): READERS,
    ("GET", "/api/v1/recipes/{name}/golden"): READERS,
    ("GET", "/api/v1/goldens/{sha256}"): READERS,
    ("POST", "/api/v1/recipes"): frozenset({"ml"}),
    ("PUT", "/api/v1/recipes/{name}"): frozenset({"ml"}),
    ("PUT", "/api/v1/lines/{line_id}/recipe"): frozenset({"ml"}),
}
WRONG_ROLE_STATUS: dict[tuple[str, str], int] = {}  # every route answers 403 to a valid token of the wrong role


class FakeEngine:
    """The running engine as the API sees it (api.services.EngineView), with one push camera."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> dict[str, Any]:
        return {"line_id": "line-1", "line_state": "running", "cameras": [], "counters": {}, "recent": []}

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        return b"\xff\xd8\xff-jpeg" if camera_id == "cam1" else None

    def evidence_jpeg(self, part_id: str) -> bytes | None:
        return None

    def push(self, camera_id: str, data: bytes, content_type: str | None) -> int:
        return 1

    def camera_token_ok(self, camera_id: str, token: str | None) -> bool:
        return camera_id == "door" and token == CAMERA_SECRET

    def push_limit(self, camera_id: str) -> int | None:
        return None  # Services.max_push_bytes

    def metrics(self) -> bytes:
        return b"twinspect_up 1\n"

    def boards_in_view(self) -> dict[str, int]:
        return {"cam1": 0}

    def set_line_recipe(self, recipe: str | None) -> None: ...


@dataclass
class Matrix:
    client: TestClient
    tokens: dict[str, str | None]
    inspection_id: str
    routes: list[tuple[str, str, bool]]  # (method, path, in the OpenAPI schema)
    golden_sha256: str


def app_routes(app: Any) -> list[tuple[str, str, bool]]:
    out = []
    for ctx in iter_route_contexts(app.routes):
        path = ctx.path
        if path in SKIPPED:
            continue
        route = ctx.original_route
        if isinstance(route, APIWebSocketRoute):
            out.append(("WS", path, True))
        elif isinstance(route, APIRoute):
            out += [(m, path, bool(route.include_in_schema)) for m in sorted(ctx.methods or ())]
        else:
            raise AssertionError(f"unexpected route {route!r} at {path}")
    return out


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    tmp: Path = tmp_path_factory.mktemp("matrix")
    _, services, admin = build_populated_app(tmp, 6)
    assert services.tokens is not None and services.inspections is not None
    app = create_app(replace(services, engine=FakeEngine()))
    tokens: dict[str, str | None] = {"admin": admin, "none": None}
    for role in ROLES[:-1]:
        tokens[role] = services.tokens.create(role, f"matrix-{role}")[1]
    info, tokens["revoked"] = services.tokens.create(Role.ADMIN, "revoked-admin")
    services.tokens.revoke(info.id)
    fail = next(x for x in services.inspections.iterate() if x.outcome is Outcome.FAIL)
    assert services.recipes is not None
    recipe = services.recipes.add(RECIPE, _png(), actor="matrix")
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post(
            f"/api/v1/inspections/{fail.id}/review",
            json={"action": "confirm"},
            headers={"Authorization": f"Bearer {tokens['qa']}"},
        )
        assert r.status_code == 200, r.text  # something reviewed, so the export has content
        yield Matrix(client, tokens, fail.id, app_routes(app), recipe.golden_sha256)
    dispose(services)


def _png() -> bytes:
    return bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())


def concrete(m: Matrix, method: str, path: str) -> str:
    values = {
        "inspection_id": m.inspection_id,
        "line": "line-1",
        "event_type": "part.inspected",
        "camera_id": "door" if path.startswith("/api/v1/cameras") else "cam1",
        "part_id": "p-1",
        "name": RECIPE,
        "sha256": m.golden_sha256,
        "line_id": "line-1",
    }
    if "{token_id}" in path:  # a fresh throwaway token for every call: only admin may revoke it
        client_tokens = m.client.app.state.services.tokens
        values["token_id"] = client_tokens.create(Role.QA, "throwaway")[0].id
    return re.sub(r"\{(\w+)\}", lambda g: values.get(g.group(1), "x"), path)


def request_kwargs(method: str, path: str, token: str | None) -> dict[str, Any]:
    kw: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"} if token else {}}
    body = {
        ("POST", "/api/v1/cameras/{camera_id}/frames"): {"content": _png()},
        ("POST", "/api/v1/twin/{line}/expected"): {"json": {}},
        ("POST", "/api/v1/session"): {"json": {"token": token or "tsp_unknown_x"}},
        ("POST", "/api/v1/tokens"): {"json": {"role": "qa", "name": "made-by-matrix"}},
        ("POST", "/api/v1/inspections/{inspection_id}/review"): {"json": {"action": "comment", "comment": "m"}},
        ("GET", "/api/v1/events/stream"): {"params": {"after": 10**9}},  # 400 after the role check: no endless stream
        ("POST", "/api/v1/recipes"): {"data": {"name": RECIPE}, "files": {"golden": ("g.png", _png(), "image/png")}},
        ("PUT", "/api/v1/recipes/{name}"): {"files": {"golden": ("g.png", _png(), "image/png")}},
        ("PUT", "/api/v1/lines/{line_id}/recipe"): {"json": {"recipe": RECIPE}},
    }.get((method, path), {})
    if (method, path) == ("POST", "/api/v1/session"):
        kw["headers"] = {}
    if "content" in body:
        kw["headers"] = {**kw["headers"], "Content-Type": "image/png"}
    return {**kw, **body}


def call(m: Matrix, method: str, path: str, token: str | None) -> int:
    """The status of one call; a WebSocket is 101 when accepted, else its close code."""
    m.client.cookies.clear()  # a sign-in sets the session cookie: never let it speak for the next caller
    url = concrete(m, method, path)
    kw = request_kwargs(method, path, token)
    if method == "WS":
        try:
            with m.client.websocket_connect(url + f"?after={10**9}", headers=kw["headers"]):
                return 101
        except WebSocketDisconnect as closed:
            return int(closed.code)
    return m.client.request(method, url, **kw).status_code


def expected(method: str, path: str, in_schema: bool, caller: str) -> str:
    if not in_schema and not path.startswith("/api/") and path != "/metrics":
        return "allowed"  # the web pages: static shells that ask /api/v1/session themselves
    allowed = RULES[(method, path)] | {"admin"}
    return "allowed" if caller in allowed else "denied"


def test_every_route_has_a_rule(matrix: Matrix):
    api = [(m, p) for m, p, schema in matrix.routes if schema or p.startswith("/api/") or p == "/metrics"]
    missing = sorted(set(api) - set(RULES))
    assert not missing, f"routes without a rule in the auth matrix: {missing}"
    stale = sorted(set(RULES) - set(api))
    assert not stale, f"rules for routes the app no longer has: {stale}"
    assert len(api) >= 27


def test_every_caller_against_every_route(matrix: Matrix):
    wrong: list[str] = []
    for method, path, in_schema in matrix.routes:
        for caller in CALLERS:
            status = call(matrix, method, path, matrix.tokens[caller])
            want = expected(method, path, in_schema, caller)
            if method == "WS":
                ok = (status == 101) if want == "allowed" else (status == 1008)
            elif want == "allowed":
                ok = status not in (401, 403) and status < 500
            else:
                deny = 401 if caller in ("none", "revoked") else WRONG_ROLE_STATUS.get((method, path), 403)
                ok = status == deny
            if not ok:
                wrong.append(f"{method} {path} as {caller}: {status}, expected {want}")
    assert not wrong, "\n".join(wrong)


def test_denials_say_why(matrix: Matrix):
    c = matrix.client
    r = c.get("/api/v1/export", headers={"Authorization": f"Bearer {matrix.tokens['qa']}"})
    assert r.status_code == 403 and "role 'qa' may not" in r.json()["detail"] and "ml" in r.json()["detail"]
    r = c.get("/api/v1/inspections")
    assert r.status_code == 401 and "sign in" in r.json()["detail"]
    r = c.get("/api/v1/stats", headers={"Authorization": f"Bearer {matrix.tokens['revoked']}"})
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_camera_push_takes_the_configured_camera_token(matrix: Matrix):
    ok = matrix.client.post(
        "/api/v1/cameras/door/frames",
        content=_png(),
        headers={"Authorization": f"Bearer {CAMERA_SECRET}", "Content-Type": "image/png"},
    )
    assert ok.status_code == 202
    wrong = matrix.client.post(
        "/api/v1/cameras/cam1/frames",
        content=_png(),
        headers={"Authorization": f"Bearer {CAMERA_SECRET}", "Content-Type": "image/png"},
    )
    assert wrong.status_code == 401  # that secret belongs to the door camera only


def test_session_cookie_requests_need_the_csrf_header_for_reviews(matrix: Matrix, tmp_path: Path):
    c = TestClient(matrix.client.app)
    signed = c.post("/api/v1/session", json={"token": matrix.tokens["qa"]})
    assert signed.status_code == 200
    url = f"/api/v1/inspections/{matrix.inspection_id}/review"
    assert c.get("/api/v1/inspections").status_code == 200  # a read needs no CSRF header
    r = c.post(url, json={"action": "comment", "comment": "via cookie"})
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["detail"]
    r = c.post(
        url, json={"action": "comment", "comment": "via cookie"}, headers={"X-CSRF-Token": signed.json()["csrf"]}
    )
    assert r.status_code == 200
