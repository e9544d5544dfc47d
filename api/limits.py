"""Request bodies are bounded before anything reads them, and JSON bodies are strict.

:class:`BodyLimits` is a pure ASGI middleware (it never buffers more than the limit, and it sees
the body before FastAPI parses it). Each request gets the limit of its route class (``ROUTES``):

- a pushed frame: its camera's ``max_bytes`` (``Services.max_push_bytes`` when the engine does not
  know the camera); the route checks the camera token before it reads the body;
- a golden image upload: 32 MiB plus the form fields (``api.routers.recipes``); its caller is
  authenticated (role ``ml``) before the body is read, so a stranger's upload is never parsed;
- everything else is JSON: 1 MiB.

A ``Content-Length`` over the limit answers 413 at once and closes the connection (the body is
never read); a body sent without one (chunked) is counted as it arrives and cut off with a 413 at
the limit. A JSON body is read whole (it is at most 1 MiB) and checked before the app parses it:
``NaN``, ``Infinity``, numbers that overflow a double (``1e400``), integers beyond 64 bits and lone
UTF-16 surrogates (``"\\ud800"``) answer 422. Python's ``json`` accepts all of them, and they would
reach the database and the event log (whose strict readers then fail). No answer echoes the input.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import require
from api.errors import Forbidden, Unauthorized
from api.routers.recipes import MAX_FORM_BYTES, MAX_GOLDEN_BYTES
from api.services import Services
from api.tokens import Role

MIB = 1024 * 1024
JSON_LIMIT = 1 * MIB
DECODE_THREADS = 2  # pushed frames decoded side by side (each in a worker thread, never on the event loop)
_THREAD_CHECK_BYTES = 64 * 1024  # JSON bodies larger than this are checked in a worker thread


class BodyTooLarge(Exception):
    """Raised into the app when a streamed body passes its limit (the 413 is already sent)."""


class _Refused(ValueError):
    """A JSON value that parses in Python but that we do not accept."""


@dataclass(frozen=True)
class RouteClass:
    """How the body of one kind of request is bounded."""

    name: str
    limit: Callable[[Services, re.Match[str]], int]
    too_large: Callable[[re.Match[str], int, int | None], str]  # (route match, limit, bytes sent if known) -> reason
    error: str = "BodyTooLarge"
    strict_json: bool = False
    gate: Callable[[Request], object] | None = None  # authenticates before the body is read; raises Unauthorized


def _sent(size: int | None) -> str:
    return f"{size} bytes sent" if size is not None else "more sent"


def push_limit(services: Services, camera_id: str) -> int:
    """The body limit of a push to ``camera_id``: its ``max_bytes``, else ``Services.max_push_bytes``."""
    known = services.engine.push_limit(camera_id) if services.engine is not None else None
    return known if known is not None else services.max_push_bytes


PUSH = RouteClass(
    "push",
    lambda services, m: push_limit(services, m[1]),
    lambda m, limit, size: f"camera {m[1]!r}: frame body over the limit of {limit} bytes ({_sent(size)})",
)
GOLDEN = RouteClass(
    "golden upload",
    lambda services, m: MAX_FORM_BYTES,
    lambda m, limit, size: f"golden: the upload is capped at {MAX_GOLDEN_BYTES // MIB} MiB ({_sent(size)})",
    error="GoldenTooLarge",
    gate=require(Role.ML),
)
JSON = RouteClass(
    "json",
    lambda services, m: JSON_LIMIT,
    lambda m, limit, size: f"request body over the limit of {limit // MIB} MiB for JSON requests ({_sent(size)})",
    strict_json=True,
)
ROUTES: list[tuple[str, re.Pattern[str], RouteClass]] = [
    ("POST", re.compile(r"^/api/v1/cameras/([^/]+)/frames$"), PUSH),
    ("POST", re.compile(r"^/api/v1/recipes$"), GOLDEN),
    ("PUT", re.compile(r"^/api/v1/recipes/[^/]+$"), GOLDEN),
]
_ANY = re.compile(r"^")
_DIGITS = re.compile(r"[0-9]+")


def route_class(method: str, path: str) -> tuple[RouteClass, re.Match[str]]:
    """The route class of a request (JSON unless ROUTES says otherwise) and its path match."""
    for route_method, pattern, kind in ROUTES:
        if method == route_method and (match := pattern.match(path)):
            return kind, match
    match = _ANY.match(path)
    assert match is not None  # the empty pattern matches every path
    return JSON, match


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


def _is_json(scope: Scope) -> bool:
    """What FastAPI parses as JSON: application/json or application/*+json."""
    media = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def answer(send: Send, status: int, detail: Any, error: str, *, close: bool) -> None:
    """A JSON error answer in the app's shape; ``close`` ends the connection (a body we will not read)."""
    body = json.dumps({"detail": detail, "error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- strict JSON ---------------------------------------------------------------------------------------


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("a number too large for a double (such as 1e400) is not accepted")
    return value


def _int64(text: str) -> int:
    value = int(text) if len(text) <= 20 else None
    if value is None or not -(2**63) <= value < 2**63:
        raise _Refused("an integer beyond 64 bits is not accepted")
    return value


def json_problem(body: bytes) -> str | None:
    """Why a JSON body is refused (non-finite or oversized numbers, lone surrogates), or None.

    Malformed JSON is left to the app, which answers it with its own 422.
    """
    try:
        value = json.loads(body, parse_constant=_constant, parse_float=_finite, parse_int=_int64)
    except _Refused as refused:
        return str(refused)
    except RecursionError:
        return "JSON nested too deeply"
    except ValueError:
        return None
    if re.search(rb"\\u[dD][89a-fA-F]", body):  # a surrogate escape: paired ones make one character
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return "a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not Unicode text"
    return None


# -- the middleware --------------------------------------------------------------------------------------


class BodyLimits:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app, self.services = app, services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind, match = route_class(scope["method"], scope["path"])
        limit = kind.limit(self.services, match)
        declared = _header(scope, b"content-length")
        size = int(declared) if declared is not None and _DIGITS.fullmatch(declared) else None
        has_body = size != 0 and (size is not None or _header(scope, b"transfer-encoding") is not None)
        if size is not None and size > limit:
            await answer(send, 413, kind.too_large(match, limit, size), kind.error, close=True)
            return
        if kind.gate is not None and not await self._let_in(kind.gate, scope, send, close=has_body):
            return
        state = _Stream(send)

        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state.seen += len(message.get("body", b""))
                if state.seen > limit:
                    await state.refuse(413, kind.too_large(match, limit, None), kind.error)
                    raise BodyTooLarge(kind.too_large(match, limit, None))
            return message

        app_receive: Receive = counted
        if kind.strict_json and has_body and _is_json(scope):
            try:
                body = await _read_all(counted)
            except BodyTooLarge:
                return
            if body is None:  # the client went away
                return
            problem = (
                json_problem(body)
                if len(body) <= _THREAD_CHECK_BYTES
                else await anyio.to_thread.run_sync(json_problem, body)
            )
            if problem is not None:
                await answer(
                    send,
                    422,
                    [{"loc": ["body"], "msg": problem, "type": "json_invalid"}],
                    "RequestValidationError",
                    close=False,
                )
                return
            app_receive = _replay(body, receive)
        try:
            await self.app(scope, app_receive, state.send)
        except Exception:
            if not state.refused:  # after our 413, whatever the app made of the cut body is moot
                raise

    async def _let_in(self, gate: Callable[[Request], object], scope: Scope, send: Send, *, close: bool) -> bool:
        """Authenticate before the body is read; answer 401/403 (and close) otherwise."""
        try:
            await anyio.to_thread.run_sync(gate, Request(scope))
        except (Unauthorized, Forbidden) as refused:
            status = 401 if isinstance(refused, Unauthorized) else 403
            await answer(send, status, str(refused), refused.__class__.__name__, close=close)
            return False
        return True


class _Stream:
    """The app's side of one response: passes it on until we refused the body ourselves."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.seen = 0
        self.started = self.refused = False

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    async def refuse(self, status: int, detail: str, error: str) -> None:
        """Answer in place of the app (unless it already began its answer; then the error just propagates)."""
        if not self.started and not self.refused:
            await answer(self._send, status, detail, error, close=True)
            self.refused = True


async def _read_all(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, then the client's own messages (a disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
