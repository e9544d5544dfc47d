"""A crashed edge shows offline in the live twins within its lease (issue 12 item 7).

The twin document is built from events and a crash writes none; the retained twin on MQTT and
the hub's twin carry the edge's connectivity lease (Ditto's ConnectionStatus: connected while
now < readyUntil), renewed every lease_s / 3 by a running edge and ended by a clean stop. The
crash tests kill -9 a real edge process and read what a newcomer reads afterwards from the real
Mosquitto / NATS JetStream; no assertion depends on how fast anything ran: only on the wall
clock time of the kill and the lease the edge was configured with.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.services import Services
from api.tokens import TokenStore
from inspection.store import open_database
from sync.config import NatsSettings, SyncSettings
from sync.connectivity import DEFINITION, Lease, ready_until, with_lease
from sync.events import dumps
from sync.hub import Hub
from sync.log import EventLog
from sync.service import SyncService
from sync.twin import TwinStore
from tests.conftest import REPO, bearer_for, wait_until
from tests.sync.conftest import story
from tests.sync.jetstream import delete_stream, settings_for
from tests.sync.test_mqtt import SHARED_PORT, Subscriber, clear_retained

LEASE_S = 2.0
MS = 0.0011  # rfc3339 keeps milliseconds: a time read back may be up to 1 ms off (plus float noise)


# the lease itself -------------------------------------------------------------------------------
def test_a_lease_is_dittos_connection_status_and_round_trips() -> None:
    lease = Lease("line-1", "edge-a", 1_764_900_000.0, 1_764_900_030.5)
    feature = lease.feature()
    assert feature["definition"] == [DEFINITION]
    assert feature["properties"] == {
        "status": {"readySince": "2025-12-05T02:00:00.000Z", "readyUntil": "2025-12-05T02:00:30.500Z"},
        "edgeId": "edge-a",
    }
    assert Lease.from_bytes(lease.to_bytes()) == lease
    assert lease.connected(now=1_764_900_030.4) and not lease.connected(now=1_764_900_030.5)
    for bad in (b"", b"{}", b'{"line_id": "x"}', b"\xff", b"[1]"):
        with pytest.raises(ValueError, match="not a lease"):
            Lease.from_bytes(bad)


def test_with_lease_adds_one_feature_and_keeps_the_rest_of_the_document(db: Engine) -> None:
    event_log = EventLog(db)
    event_log.append(story(3))
    twins = TwinStore(event_log)
    _, text = twins.document_text("line-1")
    lease = Lease.renewed("line-1", "edge-a", time.time(), 30)
    doc = json.loads(with_lease(text, lease))
    assert doc["features"].pop("connectivity") == lease.feature()
    assert dumps(doc) == text
    assert ready_until(json.loads(with_lease(text, lease))) == pytest.approx(lease.ready_until, abs=MS)
    assert ready_until(json.loads(text)) is None


# MQTT: the retained twin -------------------------------------------------------------------------
EDGE_MQTT = """
import sys, time
from inspection.store import open_database
from sync.config import MqttSettings
from sync.log import EventLog
from sync.mqtt import MqttForwarder
from sync.twin import TwinStore
log = EventLog(open_database(sys.argv[1]))
settings = MqttSettings(enabled=True, topic_prefix=sys.argv[2], twin_interval_s=0.1)
fw = MqttForwarder(log, TwinStore(log), settings, sys.argv[3], lease_s=float(sys.argv[4]))
fw.start()
time.sleep(300)
"""


def _edge_db(path: Path, line: str = "line-1") -> str:
    """An edge database whose line is running (its twin says so), as an edge's would be mid-shift."""
    url = f"sqlite:///{path}"
    engine = open_database(url)
    EventLog(engine).append([d for d in story(4, line=line) if d.type != "line.stopped"])
    engine.dispose()
    return url


def _kill(proc: subprocess.Popen[bytes]) -> float:
    """kill -9 the edge; the wall-clock time once it is dead (every renewal it made came before it)."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    return time.time()


def test_a_crashed_edge_shows_offline_in_its_retained_twin_within_the_lease(tmp_path: Path) -> None:
    tag = os.urandom(5).hex()
    prefix, edge = f"twinspect-test-{tag}", f"edge-{tag}"
    topic = f"{prefix}/line-1/twin"
    url = _edge_db(tmp_path / "edge.db")
    proc = subprocess.Popen([sys.executable, "-c", EDGE_MQTT, url, prefix, edge, str(LEASE_S)], cwd=REPO)
    try:
        with Subscriber(SHARED_PORT, [topic]) as sub:

            def leases() -> list[float]:
                return [u for m in sub.on(topic) if (u := ready_until(m.json())) is not None]

            # renewed with no new event: at least three retained copies, each promising a later end
            assert wait_until(lambda: len(leases()) >= 3, 60), f"{len(leases())} renewals"
            seen = leases()
            assert seen == sorted(seen) and seen[-1] > seen[0]
            first = sub.on(topic)[0].json()
            assert first["features"]["line"]["properties"]["status"] == "running"
            assert first["features"]["connectivity"]["properties"]["edgeId"] == edge
        killed = _kill(proc)
        with Subscriber(SHARED_PORT, [topic]) as late:  # what a twin engine reads after the crash
            assert wait_until(lambda: bool(late.on(topic)), 30), "no retained twin"
            doc = late.on(topic)[-1].json()
        # the events still say running (a crash writes none) ...
        assert doc["features"]["line"]["properties"]["status"] == "running"
        # ... but the lease ran out at most LEASE_S after the kill: from then on every reader sees it offline
        until = ready_until(doc)
        assert until is not None and until <= killed + LEASE_S + MS
        assert wait_until(lambda: time.time() > until, LEASE_S + 5)
        assert not Lease("line-1", edge, 0, until).connected()
    finally:
        proc.kill()
        proc.wait(30)
        clear_retained(SHARED_PORT, [topic, f"{prefix}/edges/{edge}/status"])


# NATS: the hub's twin ------------------------------------------------------------------------------
EDGE_NATS = """
import sys, time
from inspection.store import open_database
from sync.config import NatsSettings
from sync.log import EventLog
from sync.nats import NatsForwarder
settings = NatsSettings.model_validate_json(sys.argv[2])
log = EventLog(open_database(sys.argv[1]))
fw = NatsForwarder(log, settings, sys.argv[3], lease_s=float(sys.argv[4]))
fw.start()
if sys.argv[5] == "stop":
    assert fw.drain(60), fw.lag
    time.sleep(float(sys.argv[4]))  # at least one renewal after the drain
    fw.stop()
    print("stopped", time.time(), flush=True)
else:
    time.sleep(300)
"""


@pytest.fixture
def nats_settings() -> Iterator[NatsSettings]:
    value = settings_for("nats://127.0.0.1:4222")
    yield value
    delete_stream(value)


@pytest.fixture
def hub_side(tmp_path: Path, nats_settings: NatsSettings) -> Iterator[tuple[Hub, TestClient]]:
    """A hub (real JetStream) with its API, as ``twinspect hub`` wires them."""
    engine = open_database(f"sqlite:///{tmp_path / 'hub.db'}")
    sync = SyncService.open(engine, SyncSettings(edge_id="hub"), forwarders=False)
    hub = Hub(sync.log, nats_settings, fetch_timeout_s=0.2)
    sync.leases = hub.lease
    tokens = TokenStore(engine)
    app = create_app(Services(None, sync, tokens, heartbeat_s=0.2, max_page=50))
    hub.start()
    try:
        with TestClient(app, headers=bearer_for(tokens, "twin")) as client:
            yield hub, client
    finally:
        hub.stop()
        engine.dispose()


def _edge(url: str, settings: NatsSettings, edge: str, mode: str) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-c", EDGE_NATS, url, settings.model_dump_json(), edge, str(LEASE_S), mode]
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE)


def _live(client: TestClient, line: str) -> tuple[dict[str, Any], str]:
    r = client.get(f"/api/v1/twin/{line}")
    assert r.status_code == 200, r.text
    return r.json(), r.headers["etag"]


def test_the_hub_twin_shows_a_crashed_edge_offline_within_the_lease(
    tmp_path: Path, nats_settings: NatsSettings, hub_side: tuple[Hub, TestClient]
) -> None:
    hub, client = hub_side
    edge = "edge-crash"
    proc = _edge(_edge_db(tmp_path / "edge.db"), nats_settings, edge, "run")
    try:
        assert wait_until(lambda: hub.lease("line-1") is not None and hub.log.lines().get("line-1", 0) > 0, 60)
        first = hub.lease("line-1")
        assert first is not None and first.edge_id == edge
        assert wait_until(lambda: (hub.lease("line-1") or first).ready_until > first.ready_until, 60), "no renewal"
        doc, _ = _live(client, "line-1")
        assert doc["features"]["connectivity"]["properties"]["edgeId"] == edge
        assert doc["features"]["line"]["properties"]["status"] == "running"
        listed = client.get("/api/v1/twin").json()["lines"]
        assert [(i["line_id"], i["edge"]["edgeId"]) for i in listed] == [("line-1", edge)]
        # history is events only: ?at= has no lease and its ETag is the revision
        past = client.get("/api/v1/twin/line-1", params={"at": doc["revision"]})
        assert "connectivity" not in past.json()["features"] and past.headers["etag"] == f'"{doc["revision"]}"'

        killed = _kill(proc)
        assert wait_until(lambda: time.time() > killed + LEASE_S, LEASE_S + 5)
        doc, etag_after = _live(client, "line-1")
        until = ready_until(doc)
        assert until is not None and until <= killed + LEASE_S + MS < time.time()  # offline for every reader now
        assert doc["features"]["line"]["properties"]["status"] == "running"  # what the events alone would say
        assert client.get("/api/v1/twin").json()["lines"][0]["edge"] == {"edgeId": edge, "connected": False}
        assert etag_after == f'"{doc["revision"]}.{int(until * 1000)}"'  # the lease takes part in the ETag
    finally:
        proc.kill()
        proc.wait(30)


def test_a_clean_edge_stop_ends_its_lease_at_once(
    tmp_path: Path, nats_settings: NatsSettings, hub_side: tuple[Hub, TestClient]
) -> None:
    hub, client = hub_side
    proc = _edge(_edge_db(tmp_path / "edge.db", line="line-9"), nats_settings, "edge-clean", "stop")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    stopped = float(out.decode().split()[-1])
    assert wait_until(lambda: (lease := hub.lease("line-9")) is not None and not lease.connected(now=stopped), 60)
    lease = hub.lease("line-9")
    assert lease is not None and lease.ready_since < lease.ready_until <= stopped
    doc, etag = _live(client, "line-9")
    assert ready_until(doc) == pytest.approx(lease.ready_until, abs=MS)
    assert etag == f'"{doc["revision"]}.{int(lease.ready_until * 1000)}"'
    assert client.get("/api/v1/twin/line-9", headers={"If-None-Match": etag}).status_code == 304
