"""MQTT forwarding against real Mosquitto brokers: events, retained twins, edge status, last will, restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sync.config import MqttSettings
from sync.connectivity import ready_until
from sync.errors import BrokerError
from sync.events import Event, dumps
from sync.log import EventLog
from sync.mqtt import MqttForwarder
from sync.twin import TwinStore
from tests.conftest import REPO, free_port, wait_until
from tests.sync.conftest import draft

MakeLog = Callable[[], tuple[EventLog, TwinStore]]
HOST, SHARED_PORT = "127.0.0.1", 1883
MOSQUITTO = "/usr/sbin/mosquitto"


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """A paho subscriber that records every message; reconnects by itself (paho's loop)."""

    def __init__(self, port: int, topics: list[str], client_id: str = "", clean_session: bool = True) -> None:
        self.port, self.topics = port, topics
        self.messages: list[Message] = []
        self.sessions: list[bool] = []  # session_present of each CONNACK
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=2)  # type: ignore[arg-type]  # floats work
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: mqtt.ConnectFlags, rc: Any, _p: Any) -> None:
        self.sessions.append(bool(flags.session_present))
        if not flags.session_present:  # a persistent session keeps its subscription across restarts
            client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, _c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        self.messages.append(Message(m.topic, bytes(m.payload), bool(m.retain)))

    def __enter__(self) -> Subscriber:
        self.client.connect(HOST, self.port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(5), f"no SUBACK from the broker on {self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def on(self, topic: str) -> list[Message]:
        return [m for m in list(self.messages) if m.topic == topic]

    def events(self) -> list[Message]:
        return [m for m in list(self.messages) if "/events/" in m.topic]


def clear_retained(port: int, topics: list[str]) -> None:
    """Leave no retained messages of a test on the shared broker."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.connect(HOST, port)
    client.loop_start()
    infos = [client.publish(t, b"", qos=1, retain=True) for t in topics]
    for info in infos:
        info.wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def names() -> tuple[str, str]:
    """A topic prefix and an edge id of this test alone (the shared broker serves other runs too)."""
    tag = uuid.uuid4().hex[:10]
    return f"twinspect-test-{tag}", f"edge-{tag}"


def paho_threads(client_id: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.is_alive() and t.name.endswith(client_id)]


def state_of(messages: list[Message]) -> str | None:
    return messages[-1].json()["state"] if messages else None


def test_events_twins_and_status_reach_the_broker(make_log: MakeLog, names: tuple[str, str]) -> None:
    prefix, edge = names
    event_log, twins = make_log()
    settings = MqttSettings(enabled=True, topic_prefix=prefix, keepalive_s=5, twin_interval_s=0.2)
    fw = MqttForwarder(event_log, twins, settings, edge)
    status = f"{prefix}/edges/{edge}/status"
    lines = ["line-1", "line-2"]
    try:
        with Subscriber(SHARED_PORT, [f"{prefix}/#"]) as sub:
            fw.start()
            sent: list[Event] = []
            for i in range(25):
                line = lines[i % 2]
                sent += event_log.append([draft("part.entered", i, line)])
                sent += event_log.append([draft("part.inspected", i, line, verdict="fail" if i % 4 else "pass")])
            assert fw.drain(10), f"forwarder confirmed {fw.cursor} of {event_log.head}"
            assert wait_until(lambda: len(sub.events()) >= 50, 10), f"got {len(sub.events())} of 50 events"
            got = sub.events()
            assert [m.topic for m in got] == [f"{prefix}/{e.line_id}/events/{e.type}" for e in sent]
            assert [m.payload.decode() for m in got] == [e.body for e in sent]  # verbatim, in log order
            assert {m.topic.rsplit("/", 1)[1] for m in got} == {"part.entered", "part.inspected"}
            assert fw.forwarded == 50 and event_log.cursor("mqtt") == event_log.head

            last = {line: twins.revision(line) for line in lines}
            assert last == {line: max(e.sequence for e in sent if e.line_id == line) for line in lines}

            def twin_revisions(s: Subscriber) -> dict[str, int]:
                return {line: ms[-1].json()["revision"] for line in lines if (ms := s.on(f"{prefix}/{line}/twin"))}

            assert wait_until(lambda: twin_revisions(sub) == last, 30), twin_revisions(sub)
            assert state_of(sub.on(status)) == "online"

            with Subscriber(SHARED_PORT, [f"{prefix}/+/twin", status]) as late:  # retained: a newcomer gets them
                assert wait_until(lambda: twin_revisions(late) == last and bool(late.on(status)), 30)
                for line in lines:
                    twin = late.on(f"{prefix}/{line}/twin")[-1]
                    doc = twin.json()
                    lease = doc["features"].pop("connectivity")  # live state: the rest is the event-built document
                    assert twin.retain and dumps(doc) == twins.document_text(line)[1]
                    assert lease["properties"]["edgeId"] == edge
                    assert ready_until({"features": {"connectivity": lease}}) is not None
                online = late.on(status)[-1]
                assert online.retain and online.json()["state"] == "online" and online.json()["edge"] == edge

            fw.stop()
            assert not paho_threads(fw.client_id), "the network thread outlived stop()"
            assert wait_until(lambda: state_of(sub.on(status)) == "offline", 30)
        with Subscriber(SHARED_PORT, [status]) as after:
            assert wait_until(lambda: bool(after.on(status)), 30)
            assert after.on(status)[-1].retain and state_of(after.on(status)) == "offline"
    finally:
        fw.stop()
        clear_retained(SHARED_PORT, [status, *(f"{prefix}/{line}/twin" for line in lines)])


EDGE_PROCESS = """
import sys, time
from inspection.store import open_database
from sync.config import MqttSettings
from sync.errors import BrokerError
from sync.log import EventLog
from sync.mqtt import MqttForwarder
from sync.twin import TwinStore
log = EventLog(open_database(sys.argv[1]))
settings = MqttSettings(enabled=True, topic_prefix=sys.argv[2], keepalive_s=5)
fw = MqttForwarder(log, TwinStore(log), settings, sys.argv[3])
fw.start()
time.sleep(120)
"""


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])  # a dead edge; a hung one (only the keepalive notices)
def test_last_will_says_offline(tmp_path: Path, names: tuple[str, str], how: str) -> None:
    prefix, edge = names
    status = f"{prefix}/edges/{edge}/status"
    edge_proc = subprocess.Popen(
        [sys.executable, "-c", EDGE_PROCESS, f"sqlite:///{tmp_path / 'edge.db'}", prefix, edge], cwd=REPO
    )
    try:
        with Subscriber(SHARED_PORT, [status]) as sub:
            assert wait_until(lambda: state_of(sub.on(status)) == "online", 20), "the edge never said online"
            os.kill(edge_proc.pid, getattr(signal, how))
            killed = time.monotonic()
            # Mosquitto 2.0 checks keepalives every few seconds: 1.5 x 5 s plus up to ~5 s (measured 9-10.6 s)
            assert wait_until(lambda: state_of(sub.on(status)) == "offline", 5 * 1.5 + 6), "no last will"
            took = time.monotonic() - killed
            will = sub.on(status)[-1]
            assert will.json()["edge"] == edge
        with Subscriber(SHARED_PORT, [status]) as late:
            assert wait_until(lambda: bool(late.on(status)), 30)
            assert late.on(status)[-1].retain and state_of(late.on(status)) == "offline"
        print(f"{how}: offline after {took:.1f} s")
    finally:
        edge_proc.kill()
        edge_proc.wait(10)
        clear_retained(SHARED_PORT, [status])


class PrivateBroker:
    """A Mosquitto of this test alone, with persistence, that can be stopped and started again."""

    def __init__(self, root: Path, anonymous: bool = True) -> None:
        self.port, self.root = free_port(), root
        self.conf = root / "mosquitto.conf"
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous {str(anonymous).lower()}\n"
            "persistence true\n"
            f"persistence_location {root}/\nautosave_interval 1\nmax_queued_messages 100000\n"
            f"log_dest file {root}/mosquitto.log\n{user}"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import socket

        def listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex((HOST, self.port)) == 0

        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not wait_until(listening, 10, 0.05):
            log = self.root / "mosquitto.log"
            pytest.fail(f"mosquitto did not start on {self.port}: {log.read_text() if log.exists() else ''}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def pause(self, paused: bool) -> None:
        """Freeze (SIGSTOP) or thaw the broker: its sockets stay open, nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    b = PrivateBroker(tmp_path)
    b.start()
    yield b
    b.stop()


def test_broker_stopped_30s_mid_run_loses_nothing(make_log: MakeLog, broker: PrivateBroker) -> None:
    event_log, twins = make_log()
    event_log.start()
    settings = MqttSettings(enabled=True, port=broker.port, keepalive_s=5, twin_interval_s=0.2)
    fw = MqttForwarder(event_log, twins, settings, "edge-restart", retry_max_s=1.0)
    drafts: list[Any] = []
    producing = threading.Event()

    def produce() -> None:  # the line keeps running whatever the broker does
        i = 0
        while not producing.is_set():
            batch = [draft("part.entered", i, "line-1"), draft("part.entered", i, "line-2")]
            drafts.extend(batch)
            event_log.publish(batch)
            i += 1
            time.sleep(0.1)

    producer = threading.Thread(target=produce, daemon=True)
    sub = Subscriber(broker.port, ["twinspect/#"], client_id=f"twin-engine-{uuid.uuid4().hex[:8]}", clean_session=False)
    with sub:
        fw.start()
        producer.start()
        try:
            assert wait_until(lambda: len(sub.events()) >= 20, 60), "nothing forwarded before the outage"
            broker.stop()
            down_at = event_log.head
            assert wait_until(lambda: not fw.connected(), 60), "the forwarder never noticed the broker left"
            time.sleep(30)  # the outage; the producer's pace is the machine's: wait for its count, broker still down
            assert wait_until(lambda: event_log.head >= down_at + 400, 120), "the line stopped during the outage"
            broker.start()
            assert wait_until(lambda: fw.connects >= 2, 60), "the forwarder did not reconnect"
            time.sleep(1)
        finally:
            producing.set()
            producer.join(5)
        assert event_log.flush(10)
        assert fw.drain(20), f"forwarder confirmed {fw.cursor} of {event_log.head}"
        wanted = {d.id for d in drafts}
        assert {e.id for e in event_log.iter_all()} == wanted

        def received() -> set[str]:
            return {m.json()["id"] for m in sub.events()}

        assert wait_until(lambda: received() >= wanted, 20), f"{len(wanted - received())} events never arrived"
        fw.stop()
        assert not paho_threads(fw.client_id), "a network thread outlived stop()"

    got = [m.json() for m in sub.events()]
    assert {ce["id"] for ce in got} == wanted
    duplicates = len(got) - len(wanted)
    first_seen: dict[str, list[int]] = {"line-1": [], "line-2": []}
    seen: set[str] = set()
    for ce in got:
        if ce["id"] not in seen:
            seen.add(ce["id"])
            first_seen[ce["lineid"]].append(ce["sequence"])
    for line, seqs in first_seen.items():
        assert seqs == list(range(1, len(seqs) + 1)), f"{line}: sequences out of order or with gaps"
    assert sub.sessions[0] is False and sub.sessions[-1] is True and len(sub.sessions) >= 2, sub.sessions
    assert fw.connects >= 2
    print(f"{len(wanted)} events, {duplicates} duplicates, {fw.resent} re-sent, {len(sub.sessions)} connects")


def test_unreachable_or_refusing_broker_raises_broker_error(make_log: MakeLog, tmp_path: Path) -> None:
    event_log, twins = make_log()
    nobody = MqttForwarder(event_log, twins, MqttSettings(enabled=True, port=free_port()), "edge-refused")
    with pytest.raises(BrokerError, match="unreachable"):
        nobody.connect()
    strict = PrivateBroker(tmp_path, anonymous=False)
    strict.start()
    try:
        fw = MqttForwarder(event_log, twins, MqttSettings(enabled=True, port=strict.port), "edge-refused")
        with pytest.raises(BrokerError, match="(?i)not authori[sz]ed"):
            fw.connect()
        assert not fw.connected() and not paho_threads(fw.client_id)
    finally:
        strict.stop()


def test_a_hung_broker_is_left_and_the_unconfirmed_events_resent(make_log: MakeLog, broker: PrivateBroker) -> None:
    event_log, twins = make_log()
    settings = MqttSettings(enabled=True, port=broker.port, keepalive_s=5)
    fw = MqttForwarder(event_log, twins, settings, "edge-hung", retry_max_s=0.5, ack_timeout_s=1.0)
    with Subscriber(broker.port, ["twinspect/+/events/#"]) as sub:
        fw.start()
        try:
            sent = event_log.append([draft("part.entered", i) for i in range(5)])
            assert fw.drain(5)
            broker.pause(True)
            try:
                sent += event_log.append([draft("part.entered", i) for i in range(5, 10)])
                assert not fw.drain(2.5), "events confirmed by a frozen broker"
            finally:
                broker.pause(False)
            assert fw.drain(10), f"forwarder confirmed {fw.cursor} of {event_log.head}"
            assert wait_until(lambda: {m.json()["id"] for m in sub.events()} == {e.id for e in sent}, 30)
            assert fw.connects == 2 and fw.resent == 5
        finally:
            fw.stop()
