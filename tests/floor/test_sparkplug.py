"""The Sparkplug B edge node against a real Mosquitto, read by a Sparkplug-decoding subscriber."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from floor.config import SparkplugSettings
from floor.outlet import LogTap
from floor.sparkplug import sparkplug_b_pb2 as pb
from floor.sparkplug.node import BOOL, REBIRTH, SparkplugNode, payload
from inspection.store import open_database
from sync.errors import UnknownLine
from sync.log import EventLog
from sync.twin import TwinStore
from tests.conftest import REPO
from tests.sync.conftest import draft
from tests.sync.test_mqtt import PrivateBroker


class Host:
    """A Sparkplug host application in miniature: every message under spBv1.0/#, decoded."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"host-{port}")
        self.client.on_connect = lambda c, *a: c.subscribe("spBv1.0/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((m.topic, pb.Payload.FromString(m.payload)))

    def of(self, kind: str) -> list[tuple[str, Any]]:
        with self.lock:
            return [(t, p) for t, p in self.messages if t.split("/")[2] == kind]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def metrics(p: Any) -> dict[str, Any]:
    out = {}
    for m in p.metrics:
        out[m.name] = getattr(m, m.WhichOneof("value")) if m.WhichOneof("value") else None
    return out


def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    b = PrivateBroker(tmp_path)
    b.start()
    yield b
    b.stop()


def test_births_data_rebirth_and_births_again_after_a_broker_restart(tmp_path: Path, broker: PrivateBroker) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'line.db'}")
    event_log = EventLog(db)
    twins = TwinStore(event_log)

    def twin(line: str) -> dict[str, Any] | None:
        try:
            return json.loads(twins.document_text(line)[1])  # type: ignore[no-any-return]
        except UnknownLine:
            return None

    host = Host(broker.port)
    node = SparkplugNode(
        SparkplugSettings(enabled=True, port=broker.port, keepalive_s=5),
        "edge-1",
        "line-1",
        twin,
        bdseq_file=tmp_path / "bdseq",
    )
    tap = LogTap()
    tap.route(node.outlet)
    event_log.add_listener(tap)
    event_log.start()
    node.start()
    try:
        until(lambda: len(host.of("NBIRTH")) == 1 and len(host.of("DBIRTH")) == 1)
        nbirth = host.of("NBIRTH")[0][1]
        assert nbirth.seq == 0 and metrics(nbirth)["bdSeq"] == 0 and metrics(nbirth)[REBIRTH] is False
        topic, dbirth = host.of("DBIRTH")[0]
        assert topic == "spBv1.0/twinspect/DBIRTH/edge-1/line-1" and dbirth.seq == 1
        assert metrics(dbirth)["Counters/Inspected"] == 0
        event_log.append([draft("camera.online", 0), draft("part.inspected", 1, verdict="fail")])
        until(lambda: any(metrics(p).get("Counters/Inspected") == 1 for _, p in host.of("DDATA")))
        until(lambda: any(t.endswith("/cam1") for t, _ in host.of("DBIRTH")))  # a camera device is born
        data = [metrics(p) for t, p in host.of("DDATA") if t.endswith("/line-1")]
        assert any(d.get("Last/Verdict") == "fail" and d.get("Last/DefectClasses") == "open" for d in data)
        seqs = [p.seq for t, p in host.messages if t.split("/")[2] in ("NBIRTH", "DBIRTH", "DDATA", "NDATA")]
        assert seqs == list(range(len(seqs)))  # one sequence, in order, from the NBIRTH's 0
        # rebirth on request; an unknown command answers with an NDATA error
        host.client.publish("spBv1.0/twinspect/NCMD/edge-1", payload({REBIRTH: (BOOL, True)}, None), qos=1)
        until(lambda: len(host.of("NBIRTH")) == 2)
        host.client.publish("spBv1.0/twinspect/NCMD/edge-1", payload({"Do/Something": (BOOL, True)}, None), qos=1)
        until(lambda: any("unknown NCMD metric: Do/Something" in str(metrics(p)) for _, p in host.of("NDATA")))
        assert node.bad_commands == 1
        # the broker restarts: a new session, bdSeq + 1, births again
        host.close()
        broker.stop()
        broker.start()
        until(lambda: node.connects == 2)  # it came back by itself and published its births (counted)
        assert node.births == 3
        host = Host(broker.port)  # a host that joins now missed them: it asks for a rebirth, as Sparkplug hosts do
        until(lambda: host.client.is_connected())
        deadline = time.monotonic() + 30
        while not (host.of("NBIRTH") and len(host.of("DBIRTH")) >= 2):
            assert time.monotonic() < deadline
            host.client.publish("spBv1.0/twinspect/NCMD/edge-1", payload({REBIRTH: (BOOL, True)}, None), qos=1)
            time.sleep(0.5)
        again = host.of("NBIRTH")[-1][1]
        assert metrics(again)["bdSeq"] == 1 and again.seq == 0
        assert {t.rsplit("/", 1)[1] for t, _ in host.of("DBIRTH")} == {"line-1", "cam1"}
        assert (tmp_path / "bdseq").read_text() == "1"
    finally:
        node.stop()
        host.close()
        event_log.stop()
        db.dispose()


def test_kill_9_of_the_edge_publishes_its_death(broker: PrivateBroker) -> None:
    host = Host(broker.port)
    edge = subprocess.Popen(
        [sys.executable, "-m", "tests.floor.spb_edge", str(broker.port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert edge.stdout is not None
        born = edge.stdout.readline().split()
        assert born[0] == "born", born
        until(lambda: len(host.of("NBIRTH")) == 1)
        bdseq = metrics(host.of("NBIRTH")[0][1])["bdSeq"]
        edge.send_signal(signal.SIGKILL)
        edge.wait(10)
        until(lambda: len(host.of("NDEATH")) == 1)  # the broker publishes the will
        topic, death = host.of("NDEATH")[0]
        assert topic == "spBv1.0/twinspect/NDEATH/edge-k9" and metrics(death)["bdSeq"] == bdseq
    finally:
        if edge.poll() is None:
            edge.kill()
        host.close()
