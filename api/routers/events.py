"""The event feed: HTTP pull, Server-Sent Events and WebSocket, all resumable from an offset.

Every event is sent as its CloudEvents JSON text plus the ``offset`` extension (its
position in this log). Resume with ``after=OFFSET`` (pull, WebSocket) or the
``Last-Event-ID`` header (SSE, which browsers send by themselves on reconnect). A
consumer reads the log at its own pace: one that is slow or away never slows the
pipeline, and catches up from the log when it comes back.

Every heartbeat (``heartbeat_s``) an open SSE or WebSocket feed checks its caller's token
again: a revoked token ends the feed (SSE: the stream ends; WebSocket: close code 1008).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from api.auth import READERS, require, require_ws
from api.errors import Forbidden, NotFound, Unauthorized
from sync.errors import BadOffset, SyncError, UnknownLine
from sync.events import EVENT_TYPES, check_type
from sync.log import EventLog

router = APIRouter(prefix="/api/v1/events", tags=["events"])
readers = [Depends(require(*READERS))]

TypeFilter = Annotated[
    list[str] | None, Query(alias="type", description=f"Only these types: {', '.join(EVENT_TYPES)}.")
]
LineFilter = Annotated[str | None, Query(description="Only events of this line.")]


class EventPage(BaseModel):
    events: list[dict[str, Any]] = Field(description="CloudEvents 1.0 JSON, in offset order, each with `offset`.")
    next_after: int = Field(description="Pass as `after` to get the next page.")
    head: int = Field(description="Offset of the newest event in the log.")


def event_log(request: Request | WebSocket) -> EventLog:
    sync = request.app.state.services.sync
    if sync is None:
        raise NotFound("this process keeps no event log")
    return sync.log  # type: ignore[no-any-return]


def _filters(log: EventLog, types: list[str] | None, line: str | None) -> tuple[list[str] | None, str | None]:
    wanted = [check_type(t) for t in types] if types else None
    if line is not None and line not in log.lines():
        raise UnknownLine(f"no events for line {line!r} (lines: {', '.join(sorted(log.lines())) or 'none yet'})")
    return wanted, line


OFFSET_RE = re.compile(r"[0-9]{1,19}")  # plain ASCII decimal digits: no sign, space, underscore or other digits


def parse_offset(value: str, what: str) -> int:
    """A header's offset: only plain non-negative decimal integers (``int()`` also takes ``+5``, `` 7``, ``1_000``)."""
    if value.startswith("-") and OFFSET_RE.fullmatch(value[1:]):
        raise BadOffset(f"{what} {value!r}: must be >= 0")
    if not OFFSET_RE.fullmatch(value):
        raise BadOffset(
            f"{what} {value[:40]!r}: not an offset; send plain decimal digits 0-9 (a whole number >= 0, "
            "no sign, spaces or underscores, at most 19 digits)"
        )
    return int(value)


async def _refusal(check: Callable[[], object]) -> str | None:
    """Why the caller may no longer read a feed (its token was revoked), or None (checked in a worker thread).

    A check that cannot be made ends the feed too (fail closed); the client reconnects and is asked again.
    """
    try:
        await anyio.to_thread.run_sync(check)
    except (Unauthorized, Forbidden) as refused:
        return str(refused)
    except Exception as error:
        return f"the token cannot be checked now ({error.__class__.__name__}); reconnect"
    return None


@router.get("", summary="Events after an offset (HTTP pull)", response_model=EventPage, dependencies=readers)
def pull(
    request: Request,
    after: Annotated[int, Query(ge=0, description="Last offset already seen.")] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000, description="Most events to return.")] = 100,
    types: TypeFilter = None,
    line: LineFilter = None,
) -> Response:
    log = event_log(request)
    wanted, line = _filters(log, types, line)
    found, scanned = log.scan(after, min(limit, request.app.state.services.max_page), wanted, line)
    body = '{"events":[' + ",".join(e.with_offset() for e in found) + f'],"next_after":{scanned},"head":{log.head}}}'
    return Response(body, media_type="application/json")


async def _sse(
    log: EventLog, after: int, wanted: list[str] | None, line: str | None, heartbeat_s: float, request: Request
) -> AsyncIterator[str]:
    """The stream; every ``heartbeat_s`` (busy or idle) the caller's token is checked again and a revoked one
    ends it."""
    yield f"retry: 1000\n: twinspect event stream from offset {after}\n\n"
    check = require(*READERS)
    recheck_at = time.monotonic() + heartbeat_s
    while True:
        found, scanned = await anyio.to_thread.run_sync(log.scan, after, 500, wanted, line)
        if found:
            yield "".join(f"id: {e.offset}\ndata: {e.with_offset()}\n\n" for e in found)
        after = scanned
        idle = len(found) < 500 and not await log.async_wait(after, heartbeat_s)
        if idle and await request.is_disconnected():
            return
        if time.monotonic() >= recheck_at:
            refused = await _refusal(lambda: check(request))
            if refused is not None:
                yield f": stream closed: {refused}\n\n"
                return
            recheck_at = time.monotonic() + heartbeat_s
        if idle:
            yield f": heartbeat {after}\n\n"


@router.get(
    "/stream",
    summary="Server-Sent Events from an offset (Last-Event-ID), with heartbeats",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
    dependencies=readers,
)
def stream(
    request: Request,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[
        int | None,
        Query(
            ge=0, description="Start after this offset (else Last-Event-ID, else the current head: only new events)."
        ),
    ] = None,
    types: TypeFilter = None,
    line: LineFilter = None,
) -> StreamingResponse:
    log = event_log(request)
    wanted, line = _filters(log, types, line)
    start = parse_offset(last_event_id, "Last-Event-ID") if last_event_id is not None else after
    if start is None:
        start = log.head
    log.check_after(start)
    gen = _sse(log, start, wanted, line, request.app.state.services.heartbeat_s, request)
    return StreamingResponse(
        gen, media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


@router.websocket("/ws")
async def websocket_feed(
    ws: WebSocket, after: int | None = None, types: TypeFilter = None, line: LineFilter = None
) -> None:
    """One text message per event (CloudEvents JSON with `offset`); `?after=N` resumes."""
    try:
        require_ws(ws, *READERS)
    except (Unauthorized, Forbidden) as error:
        await ws.close(code=1008, reason=str(error)[:120])
        return
    await ws.accept()
    try:
        log = event_log(ws)
        wanted, line = _filters(log, types, line)
        start = log.head if after is None else after
        log.check_after(start)
    except (SyncError, NotFound) as error:
        await ws.close(code=1008, reason=str(error)[:120])
        return
    heartbeat_s = ws.app.state.services.heartbeat_s
    async with anyio.create_task_group() as tg:
        tg.start_soon(_until_closed, ws, tg.cancel_scope)
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            recheck_at = time.monotonic() + heartbeat_s
            while True:
                found, start = await anyio.to_thread.run_sync(log.scan, start, 500, wanted, line)
                for e in found:
                    await ws.send_text(e.with_offset())
                if len(found) < 500:
                    await log.async_wait(start, heartbeat_s)
                if time.monotonic() >= recheck_at:  # busy or idle, the token is checked again every heartbeat
                    refused = await _refusal(lambda: require_ws(ws, *READERS))
                    if refused is not None:
                        await ws.close(code=1008, reason=refused[:120])
                        break
                    recheck_at = time.monotonic() + heartbeat_s
        tg.cancel_scope.cancel()


async def _until_closed(ws: WebSocket, scope: anyio.CancelScope) -> None:
    """Drain what the client sends; when it goes away, cancel its feed (an idle feed never notices otherwise)."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass
    scope.cancel()
