"""The feed and twin endpoints: pull pages, SSE and WebSocket resume, ETags, drift, schemas, bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.services import Services
from api.tokens import TokenStore
from sync.config import SyncSettings
from sync.schemas import SCHEMA_DIR, all_schemas
from sync.service import SyncService
from tests.conftest import bearer_for
from tests.sync.conftest import story


@pytest.fixture
def sync(db: Engine) -> Iterator[SyncService]:
    service = SyncService.open(db, SyncSettings(edge_id="edge-t"), forwarders=False)
    service.log.append(story(20) + story(5, line="line-2"))
    yield service


@pytest.fixture
def client(sync: SyncService) -> Iterator[TestClient]:
    tokens = TokenStore(sync.log.engine)
    app = create_app(Services(None, sync, tokens, heartbeat_s=0.2, max_page=50))
    with TestClient(app, headers=bearer_for(tokens, "twin")) as c:
        yield c


def _untouched(sync: SyncService) -> tuple[int, str]:
    return sync.log.head, sync.twins.document_text("line-1")[1]


def test_pull_pages_in_order_and_filters(client: TestClient, sync: SyncService):
    got, after = [], 0
    while True:
        page = client.get("/api/v1/events", params={"after": after, "limit": 500}).json()
        if not page["events"]:
            break
        assert len(page["events"]) <= 50  # max_page
        got += page["events"]
        after = page["next_after"]
    assert [e["offset"] for e in got] == list(range(1, sync.log.head + 1))
    assert got[0]["specversion"] == "1.0" and got[0]["lineid"] == "line-1"
    page = client.get("/api/v1/events", params={"type": ["line.started", "line.stopped"], "line": "line-2"}).json()
    assert [e["type"] for e in page["events"]] == ["io.twinspect.line.started", "io.twinspect.line.stopped"]
    assert page["next_after"] == sync.log.head


def test_sse_resumes_after_last_event_id_and_sends_heartbeats(client: TestClient, sync: SyncService):
    with client.stream("GET", "/api/v1/events/stream", headers={"Last-Event-ID": "10"}, params={"line": "line-1"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        ids, data, heartbeat = [], [], False
        for line in r.iter_lines():
            if line.startswith("id: "):
                ids.append(int(line[4:]))
            elif line.startswith("data: "):
                data.append(json.loads(line[6:]))
            elif line.startswith(": heartbeat"):
                heartbeat = True
                break
    line1 = [e.offset for e in sync.log.read(10, 10_000, line="line-1")]
    assert ids == line1 and [d["offset"] for d in data] == line1 and heartbeat


def test_websocket_resumes_from_an_offset(client: TestClient, sync: SyncService):
    with client.websocket_connect("/api/v1/events/ws?after=5&type=part.inspected") as ws:
        first = [json.loads(ws.receive_text()) for _ in range(3)]
    expected = sync.log.read(5, 3, types=["part.inspected"])
    assert [e["id"] for e in first] == [e.id for e in expected]


def test_twin_etag_304_and_past_revisions(client: TestClient, sync: SyncService):
    r = client.get("/api/v1/twin/line-1")
    assert r.status_code == 200 and r.headers["etag"] == f'"{sync.twins.revision("line-1")}"'
    assert r.text == sync.twins.document_text("line-1")[1]
    assert client.get("/api/v1/twin/line-1", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    past = client.get("/api/v1/twin/line-1", params={"at": 7})
    assert past.headers["etag"] == '"7"' and past.json()["revision"] == 7
    revision = sync.twins.revision("line-1")
    assert client.get("/api/v1/twin").json()["lines"][0] == {
        "line_id": "line-1",
        "revision": revision,
        "href": "/api/v1/twin/line-1",
    }


def test_drift_report_emits_twin_drift_only_on_differences(client: TestClient, sync: SyncService):
    head = sync.log.head
    same = client.post("/api/v1/twin/line-1/expected", json={"line_status": "stopped"}).json()
    assert same == {"drift": False, "differences": [], "unchecked": [], "offset": None}
    assert sync.log.head == head
    r = client.post(
        "/api/v1/twin/line-1/expected",
        json={"line_status": "running", "throughput_per_min": 500, "boards_in_view": {"cam1": 2}},
    )
    report = r.json()
    assert report["drift"] and report["offset"] == head + 1 and report["unchecked"] == ["boards_in_view"]
    assert {d["field"] for d in report["differences"]} == {"line_status", "throughput_per_min"}
    drift = json.loads(client.get("/api/v1/twin/line-1").text)["features"]["drift"]["properties"]
    assert drift["differences"] == report["differences"]


@pytest.mark.parametrize(
    "method,url,kwargs,status,reason",
    [
        ("get", "/api/v1/events", {"params": {"after": 10_000}}, 400, "past the end"),
        ("get", "/api/v1/events", {"params": {"type": "part.exploded"}}, 400, "unknown event type"),
        ("get", "/api/v1/events", {"params": {"line": "line-9"}}, 404, "line-9"),
        ("get", "/api/v1/events", {"params": {"after": "ten"}}, 422, "integer"),
        ("get", "/api/v1/events/stream", {"headers": {"Last-Event-ID": "abc"}}, 400, "Last-Event-ID"),
        ("get", "/api/v1/events/stream", {"headers": {"Last-Event-ID": "-3"}}, 400, "must be >= 0"),
        ("get", "/api/v1/twin/line-9", {}, 404, "line-9"),
        ("get", "/api/v1/twin/line-1", {"params": {"at": 999}}, 400, "revision 999"),
        ("post", "/api/v1/twin/line-1/expected", {"json": {"line_status": "flying"}}, 422, "line_status"),
        ("post", "/api/v1/twin/line-1/expected", {"json": {"speed": 3}}, 422, "speed"),
        ("get", "/api/v1/schemas/part.exploded", {}, 400, "unknown event type"),
    ],
)
def test_bad_input_gets_a_reason_and_changes_nothing(
    client: TestClient, sync: SyncService, method: str, url: str, kwargs: dict, status: int, reason: str
):
    before = _untouched(sync)
    r = getattr(client, method)(url, **kwargs)
    assert r.status_code == status and reason in r.text
    assert _untouched(sync) == before


def test_schemas_are_served_and_the_committed_files_are_current(client: TestClient):
    served = client.get("/api/v1/schemas").json()
    assert served["schemas"] == all_schemas()
    for kind, schema in all_schemas().items():
        assert json.loads((SCHEMA_DIR / f"{kind}.json").read_text()) == schema, f"run python -m sync.schemas ({kind})"
    assert client.get("/api/v1/schemas/io.twinspect.part.inspected").json()["title"] == "io.twinspect.part.inspected"


def test_offsets_older_than_retention_are_410_with_the_oldest_kept(client: TestClient, sync: SyncService):
    from sync.retention import prune

    assert prune(sync.log, sync.twins, max_events=10) > 0
    before = _untouched(sync)
    r = client.get("/api/v1/events", params={"after": 0})
    assert r.status_code == 410 and f"oldest kept event has offset {sync.log.first}" in r.json()["detail"]
    r = client.get("/api/v1/events/stream", headers={"Last-Event-ID": "3"})
    assert r.status_code == 410
    assert (
        client.get("/api/v1/events", params={"after": sync.log.first - 1}).json()["events"][0]["offset"]
        == sync.log.first
    )
    assert client.get("/api/v1/twin/line-1", params={"at": 2}).status_code == 410
    assert _untouched(sync) == before
