"""Open feeds end when their token is revoked (issue 10, item 7), and Last-Event-ID is a plain offset (item 8).

A real uvicorn server with a 0.2 s heartbeat: an SSE stream and a WebSocket are opened with a
token, the token is revoked, and each feed must end by itself: the SSE stream while events keep
arriving (the token is checked every heartbeat, not only when idle), the WebSocket while idle. Each read is bounded by a
deadline (10 s, fifty heartbeats), so a feed that never ends fails the test instead of hanging.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import Engine
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from api.app import create_app
from api.routers.events import parse_offset
from api.services import Services
from api.tokens import Role, TokenStore
from inspection.store import open_database
from sync.config import SyncSettings
from sync.errors import BadOffset
from sync.service import SyncService
from tests.api.live_server import serve
from tests.sync.conftest import draft, story

DEADLINE_S = 10.0


@dataclass
class Feed:
    url: str
    sync: SyncService
    tokens: TokenStore


@pytest.fixture
def feed(tmp_path) -> Iterator[Feed]:  # type: ignore[no-untyped-def]
    db: Engine = open_database(f"sqlite:///{tmp_path / 'feed.db'}")
    sync = SyncService.open(db, SyncSettings(edge_id="edge-t"), forwarders=False)
    sync.log.append(story(3))
    tokens = TokenStore(db)
    with serve(create_app(Services(None, sync, tokens, heartbeat_s=0.2))) as url:
        yield Feed(url, sync, tokens)
    db.dispose()


def test_an_sse_stream_ends_when_its_token_is_revoked_even_while_busy(feed: Feed):
    info, token = feed.tokens.create(Role.TWIN, "reader")
    lines, n = [], 0
    with httpx.stream(
        "GET",
        feed.url + "/api/v1/events/stream",
        params={"after": 0},
        headers={"Authorization": f"bearer {token}"},
        timeout=DEADLINE_S,
    ) as r:
        assert r.status_code == 200
        deadline = time.monotonic() + DEADLINE_S
        for line in r.iter_lines():
            lines.append(line)
            if line.startswith("data: "):  # the feed stays busy: one more event per event read
                if n == 0:
                    feed.tokens.revoke(info.id)  # after the first event
                n += 1
                feed.sync.log.append([draft("part.entered", 100 + n)])
            assert time.monotonic() < deadline, "the stream went on after its token was revoked"
    closing = [line for line in lines if line.startswith(": stream closed: ")]
    assert closing and "unknown or revoked" in closing[0] and n > 1
    r = httpx.get(feed.url + "/api/v1/events/stream", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401  # and it cannot come back


def test_a_websocket_closes_when_its_token_is_revoked(feed: Feed):
    info, token = feed.tokens.create(Role.TWIN, "reader")
    ws_url = feed.url.replace("http://", "ws://") + "/api/v1/events/ws?after=0"
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        first = ws.recv(timeout=DEADLINE_S)
        assert '"offset":1' in first
        feed.tokens.revoke(info.id)
        deadline = time.monotonic() + DEADLINE_S
        with pytest.raises(ConnectionClosed) as closed:
            while time.monotonic() < deadline:
                ws.recv(timeout=DEADLINE_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert "unknown or revoked" in closed.value.rcvd.reason


@pytest.mark.parametrize("value", ["+5", "1_000", " 7", "7 ", "\u0663", "0x10", "1e3", "9" * 20, ""])
def test_last_event_id_takes_only_plain_decimal_digits(value: str):
    with pytest.raises(BadOffset, match="not an offset; send plain decimal digits 0-9"):
        parse_offset(value, "Last-Event-ID")
    assert parse_offset("0", "Last-Event-ID") == 0 and parse_offset("007", "Last-Event-ID") == 7


@pytest.mark.parametrize("value", ["+5", "1_000"])
def test_a_stream_with_a_signed_or_underscored_last_event_id_is_400(feed: Feed, value: str):
    _, token = feed.tokens.create(Role.TWIN, "reader")
    with httpx.stream(
        "GET",
        feed.url + "/api/v1/events/stream",
        timeout=DEADLINE_S,
        headers={"Authorization": f"Bearer {token}", "Last-Event-ID": value},
    ) as r:
        assert r.status_code == 400  # headers only: a stream that opened is never read
        assert "not an offset" in r.read().decode()
