"""The event feed against a real server process: kill -9 mid-flood, a long absence, a stalled reader, bad input.

Each test runs ``tests/sync/flood_server.py`` (the real app under uvicorn, a thread flooding
``line-1``) as a child process and reads it over real sockets: SSE, HTTP pull, WebSocket.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from inspection.store import open_database
from sync.events import dumps
from sync.log import EventLog
from sync.twin import TwinStore, apply, document, new_state
from tests.conftest import free_port, wait_until
from tests.sync.flood_server import FloodProcess, draft_for

STORED = 10_000


class SseReader(threading.Thread):
    """Reads ``/api/v1/events/stream`` from ``after``; resumes with ``Last-Event-ID`` after a disconnect.

    ``gate`` cleared: the reader stops reading (its socket fills, the server must not care).
    """

    def __init__(self, server: FloodProcess, after: int = 0, pause: float = 0.0, rcvbuf: int | None = None) -> None:
        super().__init__(daemon=True)
        url = server.url
        self.url, self.after, self.pause = url, after, pause
        self.records: list[tuple[int, int, str]] = []  # (offset, sequence, id) in arrival order
        self.bodies: list[dict[str, Any]] = []
        self.resumed_with: list[str] = []  # the Last-Event-ID of each reconnect
        self.last_id: str | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.done = threading.Event()
        self.error: BaseException | None = None
        options = [(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)] if rcvbuf else None
        self.client = httpx.Client(
            transport=httpx.HTTPTransport(socket_options=options),
            headers=server.headers,
            timeout=httpx.Timeout(5.0, read=10.0),
        )

    def run(self) -> None:
        try:
            while not self.done.is_set():
                try:
                    self._read_once()
                except httpx.TransportError:
                    time.sleep(0.1)
        except BaseException as error:  # reported by the test
            self.error = error
        finally:
            self.client.close()

    def _read_once(self) -> None:
        headers = {"Last-Event-ID": self.last_id} if self.last_id is not None else {}
        params = {} if self.last_id is not None else {"after": self.after}
        with self.client.stream("GET", self.url + "/api/v1/events/stream", params=params, headers=headers) as r:
            assert r.status_code == 200, r.read()
            if self.last_id is not None:
                self.resumed_with.append(self.last_id)
            event_id = None
            for line in r.iter_lines():
                if self.done.is_set():
                    return
                if line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    ce = json.loads(line[6:])
                    assert str(ce["offset"]) == event_id, (ce["offset"], event_id)
                    self.records.append((ce["offset"], ce["sequence"], ce["id"]))
                    self.bodies.append(ce)
                    self.last_id = event_id
                    if self.pause:
                        time.sleep(self.pause)
                    self.gate.wait()

    def stop(self) -> None:
        self.done.set()
        self.gate.set()
        self.join(15)
        assert not self.is_alive(), "the SSE reader did not stop"
        assert self.error is None, repr(self.error)


def sequences(records: list[tuple[int, int, str]]) -> list[int]:
    return [seq for _, seq, _ in records]


def stored_rows(db_path: Path) -> list[tuple[int, int, str]]:
    db = open_database(f"sqlite:///{db_path}")
    try:
        return [(e.offset, e.sequence, e.id) for e in EventLog(db).iter_all()]
    finally:
        db.dispose()


def replayed_twin(db_path: Path) -> str:
    """The twin of line-1 rebuilt from zero by a fresh store on the database."""
    db = open_database(f"sqlite:///{db_path}")
    try:
        return TwinStore(EventLog(db)).document_text("line-1")[1]
    finally:
        db.dispose()


def test_kill_9_mid_flood_loses_and_repeats_nothing(tmp_path: Path) -> None:
    total, release = 3000, tmp_path / "release"
    server = FloodProcess(
        tmp_path / "data", free_port(), total, "--pause", "0.05", "--hold-at", "2000", "--release-file", str(release)
    ).start()
    reader = SseReader(server, after=0)
    reader.start()
    try:  # the flood is held at 2000 until released: it cannot end before the kill, however slow the reader
        assert wait_until(lambda: len(reader.records) >= total * 4 // 10, 120), len(reader.records)
        assert server.report() is None
        server.kill()
        release.touch()
        server.start()
        report = server.wait_flood(60)
        assert 0 < report["first_sequence"] < total and report["last_sequence"] == total, report
        assert wait_until(lambda: len(reader.records) >= total, 30), len(reader.records)
        # no sleep for "a duplicate would arrive now": the log holds exactly `total` offsets and the reader
        # already has the last one; offsets only grow (asserted below), so nothing can come after it
        head = httpx.get(
            server.url + "/api/v1/events", params={"after": total - 1}, headers=server.headers, timeout=10
        ).json()["head"]
        twin_text = httpx.get(server.url + "/api/v1/twin/line-1", headers=server.headers).text
    finally:
        reader.stop()
        server.stop()
    assert reader.resumed_with and 0 < int(reader.resumed_with[0]) < total  # resumed mid-stream by Last-Event-ID
    assert head == total and reader.records[-1][0] == head and len(reader.records) == total
    assert sorted(sequences(reader.records)) == list(range(1, total + 1))
    assert sequences(reader.records) == list(range(1, total + 1))
    offsets = [o for o, _, _ in reader.records]
    assert all(a < b for a, b in zip(offsets, offsets[1:], strict=False))
    assert len({i for _, _, i in reader.records}) == total
    assert reader.records == stored_rows(server.data_dir / "twinspect.db")
    state = new_state("line-1")
    for ce in reader.bodies:
        apply(state, {k: v for k, v in ce.items() if k != "offset"}, ce["offset"])
    assert json.loads(twin_text)["revision"] == total
    assert twin_text == replayed_twin(server.data_dir / "twinspect.db") == dumps(document(state))


@pytest.fixture(scope="module")
def stored_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FloodProcess]:
    """A server whose log already holds STORED events of line-1 (written before it started; it floods none)."""
    data = tmp_path_factory.mktemp("stored")
    db = open_database(f"sqlite:///{data / 'twinspect.db'}")
    log = EventLog(db)
    for start in range(0, STORED, 1000):
        log.append([draft_for(seq) for seq in range(start + 1, start + 1001)])
    db.dispose()
    server = FloodProcess(data, free_port(), STORED).start()
    yield server
    server.stop()


def test_a_consumer_away_for_10000_events_catches_up_over_sse_pull_and_websocket(stored_server: FloodProcess) -> None:
    url = stored_server.url
    reader = SseReader(stored_server, after=0)
    reader.start()
    assert wait_until(lambda: len(reader.records) >= STORED, 60), len(reader.records)
    time.sleep(0.2)
    reader.stop()
    assert [(o, s) for o, s, _ in reader.records] == [(n, n) for n in range(1, STORED + 1)]

    pulled: list[dict[str, Any]] = []
    after, pages = 0, 0
    with httpx.Client(base_url=url, headers=stored_server.headers, timeout=30) as client:
        while True:
            page = client.get("/api/v1/events", params={"after": after, "limit": 1000}).json()
            pulled += page["events"]
            pages += 1
            if page["next_after"] == page["head"]:
                break
            after = page["next_after"]
    assert pages == STORED // 1000 and pulled == reader.bodies

    received: list[dict[str, Any]] = []
    with connect(
        f"ws://127.0.0.1:{stored_server.port}/api/v1/events/ws?after=0",
        open_timeout=10,
        additional_headers=stored_server.headers,
    ) as ws:
        while len(received) < STORED:
            received.append(json.loads(ws.recv(timeout=10)))
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)  # nothing more: no duplicates
    assert received == reader.bodies
    assert [ce["sequence"] for ce in received] == list(range(1, STORED + 1))


def test_a_stalled_or_slow_sse_client_does_not_slow_the_pipeline(tmp_path: Path) -> None:
    """A stalled and a slow client hold nothing up: the flood ends, the API answers, a third client gets everything.

    Nothing here is timed: the flood must complete, and a healthy client must receive every event, while the
    stalled client is still held at its first event (a server that waited on it would never get there).
    """
    first, total = 4000, 8000
    data, port = tmp_path / "data", free_port()
    baseline = FloodProcess(data, port, first, "--pause", "0.01").start()
    try:
        baseline.wait_flood(120)  # the first `first` events, stored before the clients connect
    finally:
        baseline.stop()
    server = FloodProcess(data, port, total, "--pause", "0.01", "--go-file", str(data / "go")).start()
    stalled = SseReader(server, after=0, rcvbuf=65536)
    slow = SseReader(server, after=0, pause=1.0)
    healthy = SseReader(server, after=0)
    try:
        stalled.gate.clear()  # reads one event, then nothing
        stalled.start()
        slow_started = time.monotonic()
        slow.start()
        healthy.start()
        assert wait_until(lambda: len(stalled.records) == 1 and len(slow.records) >= 1, 30)
        (data / "go").touch()
        report = server.wait_flood(120)
        assert report["first_sequence"] == first and report["last_sequence"] == total
        head = httpx.get(
            server.url + "/api/v1/events", params={"after": total - 1}, headers=server.headers, timeout=30
        ).json()
        twin = httpx.get(server.url + "/api/v1/twin/line-1", headers=server.headers, timeout=30).json()
        assert head["head"] == total and twin["revision"] == total
        assert wait_until(lambda: len(healthy.records) >= total, 60), len(healthy.records)
        # still held: the flood and the healthy client went past it; the slow one never ran ahead of its pace
        assert len(stalled.records) == 1
        assert len(slow.records) <= time.monotonic() - slow_started + 1
        assert len(slow.records) < total
        stalled.gate.set()
        assert wait_until(lambda: len(stalled.records) >= total, 60), len(stalled.records)
    finally:
        healthy.stop()
        slow.stop()
        stalled.stop()
        server.stop()
    assert sequences(healthy.records) == list(range(1, total + 1))
    assert sequences(stalled.records) == list(range(1, total + 1))
    assert sequences(slow.records) == list(range(1, len(slow.records) + 1))


def test_bad_offsets_types_and_lines_are_refused_with_a_reason_and_change_nothing(stored_server: FloodProcess) -> None:
    with httpx.Client(base_url=stored_server.url, headers=stored_server.headers, timeout=10) as client:

        def state() -> tuple[Any, ...]:
            page = client.get("/api/v1/events", params={"after": STORED - 1}).json()
            return page["head"], page["events"], client.get("/api/v1/twin/line-1").text

        before = state()
        assert before[0] == STORED
        stream = "/api/v1/events/stream"
        refused = [
            (client.get(stream, headers={"Last-Event-ID": "abc"}), 400, "not an offset"),
            (client.get(stream, headers={"Last-Event-ID": "-1"}), 400, "must be >= 0"),
            (client.get(stream, headers={"Last-Event-ID": str(STORED + 1)}), 400, "past the end"),
            (client.get(stream, params={"after": STORED + 5}), 400, "past the end"),
            (client.get(stream, params={"after": 0, "type": "part.bogus"}), 400, "unknown event type"),
            (client.get(stream, params={"after": 0, "line": "line-9"}), 404, "no events for line"),
            (client.get("/api/v1/events", params={"after": STORED + 1}), 400, "past the end"),
            (client.get("/api/v1/events", params={"type": "io.twinspect.nope"}), 400, "unknown event type"),
            (client.get("/api/v1/events", params={"line": "line-9"}), 404, "no events for line"),
            (client.get("/api/v1/events", params={"after": "-1"}), 422, "greater than or equal to 0"),
            (client.get("/api/v1/twin/line-9"), 404, "no twin for line"),
            (client.get("/api/v1/twin/line-1", params={"at": STORED + 1}), 400, "must be between"),
            (httpx.get(stored_server.url + stream, params={"after": 0}), 401, "sign in first"),
            (
                httpx.get(stored_server.url + "/api/v1/twin/line-1", headers={"Authorization": "Bearer tsp_x_y"}),
                401,
                "unknown or revoked",
            ),
        ]
        for response, status, reason in refused:
            assert response.status_code == status, (response.request.url, response.text)
            assert reason in json.dumps(response.json()["detail"]), (response.request.url, response.text)
        ws_url = f"ws://127.0.0.1:{stored_server.port}/api/v1/events/ws?after={STORED + 1}"
        with connect(ws_url, additional_headers=stored_server.headers) as ws, pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert "past the end" in closed.value.rcvd.reason
        assert state() == before
