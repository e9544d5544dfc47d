"""NATS JetStream against a real nats-server: edge forwarding, the hub, duplicates, restarts, outages.

Each test uses a stream, subject prefix and durable of its own on the shared server (deleted at
the end); the outage test runs a private nats-server it can stop and start again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from inspection.store import open_database
from sync.config import NatsSettings
from sync.events import Draft, Event
from sync.hub import Hub
from sync.log import EventLog
from sync.nats import NatsForwarder, subject
from sync.twin import TwinStore
from tests.conftest import REPO, free_port, wait_until
from tests.sync.conftest import draft, story
from tests.sync.jetstream import (
    PrivateServer,
    consumer_info,
    create_stream,
    delete_stream,
    publish,
    settings_for,
    stream_contents,
    with_client,
)

SHARED_URL = "nats://127.0.0.1:4222"
OpenLog = Callable[[str], tuple[EventLog, TwinStore]]


@pytest.fixture
def settings() -> Iterator[NatsSettings]:
    value = settings_for(SHARED_URL)
    yield value
    delete_stream(value)


@pytest.fixture
def open_log(tmp_path: Path) -> Iterator[OpenLog]:
    """An event log (and its twin) on the SQLite database ``<tmp>/<name>.db``; reopening gives a fresh one."""
    engines = {}

    def make(name: str) -> tuple[EventLog, TwinStore]:
        if name not in engines:
            engines[name] = open_database(f"sqlite:///{tmp_path / name}.db")
        log = EventLog(engines[name])
        return log, TwinStore(log)

    yield make
    for engine in engines.values():
        engine.dispose()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateServer]:
    value = PrivateServer(free_port(), tmp_path / "jetstream")
    yield value
    value.stop()


def forward(event_log: EventLog, settings: NatsSettings) -> NatsForwarder:
    """Run a forwarder until JetStream confirmed the whole log; returns it stopped."""
    forwarder = NatsForwarder(event_log, settings, "edge-test", batch=128)
    forwarder.start()
    try:
        assert forwarder.drain(20.0), f"lag {forwarder.lag}"
    finally:
        forwarder.stop()
    return forwarder


def assert_same_line(
    hub_log: EventLog, hub_twins: TwinStore, edge_log: EventLog, edge_twins: TwinStore, line: str
) -> None:
    """The hub holds exactly the edge's events of ``line`` (sequence 1..N, same bodies) and the same twin."""
    mine = [(e.sequence, e.id, e.body) for e in hub_log.iter_all(line=line)]
    theirs = [(e.sequence, e.id, e.body) for e in edge_log.iter_all(line=line)]
    assert [s for s, _, _ in mine] == list(range(1, len(theirs) + 1))
    assert mine == theirs
    assert hub_twins.document_text(line) == edge_twins.document_text(line)


KINDS = ("part.entered", "part.inspected", "part.exited")


def test_forwarder_sends_each_event_once_and_republishing_adds_nothing(
    settings: NatsSettings, open_log: OpenLog
) -> None:
    edge_log, _ = open_log("edge")
    events = edge_log.append([draft(KINDS[i % 3], i // 2, line=f"line-{i % 2 + 1}") for i in range(300)])
    first = forward(edge_log, settings)
    assert first.forwarded == 300 and first.duplicates == 0
    assert edge_log.cursor(first.name) == edge_log.head == 300

    stored = stream_contents(settings)
    assert [m.msg_id for m in stored] == [e.id for e in events]  # each once, in log order
    assert [m.subject for m in stored] == [f"{settings.subject_prefix}.{e.line_id}.{e.type}" for e in events]
    assert stored[1].subject == f"{settings.subject_prefix}.line-2.part.inspected"
    assert [m.data for m in stored] == [e.body.encode() for e in events]

    edge_log.set_cursor(first.name, 0)  # as if the cursor had been lost: everything goes out again
    again = forward(edge_log, settings)
    assert again.forwarded == 300 and again.duplicates == 300
    assert [m.msg_id for m in stream_contents(settings)] == [e.id for e in events]


def test_hub_merges_two_edge_processes(settings: NatsSettings, open_log: OpenLog, tmp_path: Path) -> None:
    hub_log, hub_twins = open_log("hub")
    hub = Hub(hub_log, settings, fetch_timeout_s=0.5)
    hub.start()
    try:
        lines = ("line-a", "line-b")
        procs = {
            line: subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.sync.jetstream",
                    str(tmp_path / f"{line}.db"),
                    line,
                    "60",
                    "7",
                    settings.model_dump_json(),
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for line in lines
        }
        heads = {}
        for line, proc in procs.items():
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err[-3000:]
            report = json.loads(out.strip().splitlines()[-1])
            assert report["drained"] and report["forwarded"] == report["head"] > 150
            heads[line] = report["head"]
        assert wait_until(lambda: hub_log.head == sum(heads.values()), 20.0), (hub_log.head, heads, hub.state)
    finally:
        hub.stop()
    assert (hub.ingested, hub.duplicates, hub.malformed, hub.held, hub.gaps) == (sum(heads.values()), 0, 0, 0, 0)
    assert hub.state == "stopped"
    assert hub_log.lines() == heads
    for line in lines:
        edge_log, edge_twins = open_log(line)
        assert edge_log.head == heads[line]
        assert_same_line(hub_log, hub_twins, edge_log, edge_twins, line)
        assert TwinStore(hub_log).document_text(line) == edge_twins.document_text(line)  # rebuilt from the db


def test_hub_applies_an_event_sent_twice_once(settings: NatsSettings, open_log: OpenLog) -> None:
    edge_log, edge_twins = open_log("edge")
    events = edge_log.append(story(4, "line-1"))
    forward(edge_log, settings)
    hub_log, hub_twins = open_log("hub")
    hub = Hub(hub_log, settings, fetch_timeout_s=0.3)
    hub.start()
    try:
        assert wait_until(lambda: hub_log.head == len(events), 10.0)
        head, twin = hub_log.head, hub_twins.document_text("line-1")
        again = events[5]  # re-sent with another Nats-Msg-Id (JetStream keeps it), then with its own (dropped)
        dup = publish(
            settings,
            [
                (subject(settings, again), again.body.encode(), str(uuid.uuid4())),
                (subject(settings, again), again.body.encode(), again.id),
            ],
        )
        assert dup == [False, True]
        assert len(stream_contents(settings)) == len(events) + 1
        assert wait_until(lambda: hub.duplicates == 1, 10.0)
        assert (hub_log.head, hub_twins.document_text("line-1")) == (head, twin)

        edge_log.append([draft("part.entered", 99, line="line-1")])  # and the hub goes on after it
        forward(edge_log, settings)
        assert wait_until(lambda: hub_log.head == head + 1, 10.0)
    finally:
        hub.stop()
    assert (hub.ingested, hub.duplicates) == (len(events) + 1, 1)
    assert_same_line(hub_log, hub_twins, edge_log, edge_twins, "line-1")


def test_hub_restart_continues_without_loss_or_duplicates(settings: NatsSettings, open_log: OpenLog) -> None:
    edge_log, edge_twins = open_log("edge")
    edge_log.append(story(10, "line-1")[:20])
    forward(edge_log, settings)
    hub_log, _ = open_log("hub")
    first = Hub(hub_log, settings, fetch_timeout_s=0.3, ack_wait_s=1.0)
    first.start()
    assert wait_until(lambda: hub_log.head == 20, 10.0)
    first.stop()

    edge_log.append(story(10, "line-1")[20:])  # while no hub runs
    forward(edge_log, settings)
    hub_log, hub_twins = open_log("hub")  # the process starts again: same database, same durable
    second = Hub(hub_log, settings, fetch_timeout_s=0.3, ack_wait_s=1.0)
    second.start()
    try:
        assert wait_until(lambda: hub_log.head == edge_log.head, 10.0)
    finally:
        second.stop()
    assert (first.ingested, second.ingested, first.duplicates, second.duplicates) == (20, edge_log.head - 20, 0, 0)
    assert_same_line(hub_log, hub_twins, edge_log, edge_twins, "line-1")


def test_hub_after_a_crash_gets_unacked_events_again_in_order(settings: NatsSettings, open_log: OpenLog) -> None:
    edge_log, edge_twins = open_log("edge")
    events = edge_log.append(story(10, "line-1"))
    forward(edge_log, settings)
    hub_log, _ = open_log("hub")
    first = Hub(hub_log, settings, fetch_timeout_s=0.3, ack_wait_s=1.0)
    first.start()
    assert wait_until(lambda: hub_log.head == len(events), 10.0)
    first.stop()
    more = edge_log.append(story(3, "line-1"))
    forward(edge_log, settings)

    async def crash(nc: Client) -> None:  # a hub that fetched 8 messages, stored the first 5, died before acking
        sub = await nc.jetstream().pull_subscribe(
            f"{settings.subject_prefix}.>", durable=settings.durable, stream=settings.stream
        )
        msgs = await sub.fetch(8, timeout=5)
        assert [Event.from_body(m.data).id for m in msgs] == [e.id for e in more[:8]]
        hub_log.ingest(Event.from_body(m.data) for m in msgs[:5])

    with_client(settings, crash)
    hub_log, hub_twins = open_log("hub")
    second = Hub(hub_log, settings, fetch_timeout_s=0.3, ack_wait_s=1.0)
    second.start()  # gets the messages after the 8 first: held until the 8 come again, after ack_wait
    try:
        assert wait_until(lambda: hub_log.head == edge_log.head, 15.0), (hub_log.head, second.held)
    finally:
        second.stop()
    assert (second.ingested, second.duplicates, second.gaps, second.held) == (len(more) - 5, 5, 0, 0)
    assert_same_line(hub_log, hub_twins, edge_log, edge_twins, "line-1")


def test_hub_puts_a_line_back_in_order_and_gives_up_on_a_lost_event(settings: NatsSettings, open_log: OpenLog) -> None:
    drafts = [draft("part.entered", i, line="line-1") for i in range(5)]
    events = [Event.from_draft(d, 0, n + 1) for n, d in enumerate(drafts)]
    hub_log, _ = open_log("hub")
    hub = Hub(hub_log, settings, fetch_timeout_s=0.3, gap_wait_s=1.5)
    hub.start()
    try:
        assert wait_until(lambda: hub.state == "running", 10.0)  # the hub made the stream
        publish(settings, [(subject(settings, e), e.body.encode(), e.id) for e in (events[0], events[2])])
        assert wait_until(lambda: hub.held == 1, 10.0)
        assert hub_log.lines() == {"line-1": 1}
        publish(settings, [(subject(settings, events[1]), events[1].body.encode(), events[1].id)])
        assert wait_until(lambda: hub_log.head == 3, 10.0)
        assert [e.id for e in hub_log.read(0)] == [e.id for e in events[:3]]

        publish(settings, [(subject(settings, events[4]), events[4].body.encode(), events[4].id)])  # 4 is lost
        assert wait_until(lambda: hub.held == 1, 10.0)
        assert wait_until(lambda: hub_log.head == 4, 10.0)  # after gap_wait_s
    finally:
        hub.stop()
    assert [e.sequence for e in hub_log.read(0)] == [1, 2, 3, 5]
    assert (hub.gaps, hub.held, hub.duplicates) == (1, 0, 0)


def test_hub_terminates_malformed_messages_and_goes_on(settings: NatsSettings, open_log: OpenLog) -> None:
    good = [Event.from_draft(draft("part.entered", i, line="line-1"), 0, i + 1) for i in range(3)]
    bad_data = Event.from_draft(Draft("part.inspected", "line-1", "/edge", {"verdict": "maybe"}), 0, 2)
    prefix = f"{settings.subject_prefix}.line-1"
    create_stream(settings)
    publish(
        settings,
        [
            (subject(settings, good[0]), good[0].body.encode(), good[0].id),
            (f"{prefix}.part.entered", b"not json at all", "m1"),
            (f"{prefix}.part.entered", b'{"specversion": "1.0", "type": "io.twinspect.part.entered"}', "m2"),
            (f"{prefix}.part.entered", json.dumps({**good[1].cloudevent(), "type": "io.other.thing"}).encode(), "m3"),
            (subject(settings, bad_data), bad_data.body.encode(), bad_data.id),  # sequence 2 with invalid data
            (subject(settings, good[2]), good[2].body.encode(), good[2].id),  # sequence 3: not held for 2
        ],
    )
    hub_log, _ = open_log("hub")
    hub = Hub(hub_log, settings, fetch_timeout_s=0.3)  # gap_wait_s stays 60: the test would time out
    hub.start()
    try:
        assert wait_until(lambda: hub_log.head == 2 and hub.malformed == 4, 10.0), (hub_log.head, hub.malformed)
        info = consumer_info(settings)
        assert (info.num_ack_pending, info.num_redelivered, info.ack_floor.stream_seq) == (0, 0, 6)
    finally:
        hub.stop()
    assert [e.id for e in hub_log.read(0)] == [good[0].id, good[2].id]
    assert (hub.ingested, hub.held, hub.gaps) == (2, 0, 0)


def test_edge_and_hub_ride_out_a_broker_outage(server: PrivateServer, open_log: OpenLog) -> None:
    settings = settings_for(server.url)
    edge_log, edge_twins = open_log("edge")
    hub_log, hub_twins = open_log("hub")
    forwarder = NatsForwarder(edge_log, settings, "edge-1", batch=64)
    hub = Hub(hub_log, settings, fetch_timeout_s=0.3)
    forwarder.start()  # both start while the broker is down
    hub.start()
    drafts = story(40, "line-1")
    try:
        edge_log.append(drafts[:60])
        assert wait_until(lambda: hub.state == "reconnecting", 30.0)
        server.start()
        assert wait_until(lambda: hub_log.head == 60, 15.0), (hub_log.head, forwarder.lag, hub.state)
        server.stop()
        edge_log.append(drafts[60:90])
        assert not wait_until(lambda: forwarder.lag == 0, 0.5)
        server.start()  # same store: the stream and the durable consumer survive
        edge_log.append(drafts[90:])
        assert wait_until(lambda: hub_log.head == len(drafts), 20.0), (hub_log.head, forwarder.lag, hub.state)
        assert forwarder.drain(5.0)
    finally:
        forwarder.stop()
        hub.stop()
    assert hub.ingested == len(drafts)
    assert_same_line(hub_log, hub_twins, edge_log, edge_twins, "line-1")
