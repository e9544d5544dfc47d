"""The twin tells the truth after the edge stops (issue 12 item 7).

A clean stop appends the cameras' last states and line.stopped (reason shutdown), committed
before ``stop`` returns, and the retained twin on MQTT carries them; an edge that starts and
finds its twin still running (the last run crashed) says so first (reason unclean_shutdown).
The recorder's camera watcher never runs here (``poll_s`` of an hour): each step is called.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from camera.frame import SourceState
from camera.source import SourceStats
from inspection.pipeline.events import LineState, LineStateChanged
from sync.config import MqttSettings
from sync.connectivity import Lease, ready_until
from sync.log import EventLog
from sync.mqtt import MqttForwarder
from sync.recorder import EngineRecorder
from sync.twin import TwinStore
from tests.conftest import wait_until
from tests.sync.conftest import draft
from tests.sync.test_mqtt import SHARED_PORT, Subscriber, clear_retained

MakeLog = Callable[[], tuple[EventLog, TwinStore]]
CAMERAS = ("cam1", "cam2")


class StubSource:
    """A camera that is running until ``stop``."""

    def __init__(self, camera_id: str) -> None:
        self.camera_id, self.running = camera_id, True

    def stop(self) -> None:
        self.running = False

    def stats(self) -> SourceStats:
        state = SourceState.RUNNING if self.running else SourceState.STOPPED
        return SourceStats(self.camera_id, state, 10.0, 50, 0, 0, None, 0.1, self.running)


def run_line(event_log: EventLog, twins: TwinStore) -> tuple[EngineRecorder, dict[str, StubSource]]:
    """A line that ran: both cameras online, the belt moving, ten boards inspected in ten seconds."""
    recorder = EngineRecorder(event_log, twins, "line-1", "edge-1", {}, poll_s=3600)
    sources = {cid: StubSource(cid) for cid in CAMERAS}
    recorder.start(sources)  # type: ignore[arg-type]
    event_log.publish(recorder.camera_drafts(sources))  # type: ignore[arg-type]  # what the watcher does
    recorder.line_event(LineStateChanged("cam1", LineState.RUNNING, LineState.UNKNOWN, 1, 0.0))
    event_log.publish([draft("part.inspected", i) for i in range(10)])
    assert event_log.flush(10)
    return recorder, sources


def features(twins: TwinStore) -> dict[str, Any]:
    return json.loads(twins.document_text("line-1")[1])["features"]  # type: ignore[no-any-return]


def test_a_clean_stop_appends_line_stopped_and_the_cameras_offline(make_log: MakeLog) -> None:
    event_log, twins = make_log()
    event_log.start()
    recorder, sources = run_line(event_log, twins)
    before = features(twins)
    assert before["line"]["properties"]["status"] == "running"
    assert before["throughput"]["properties"]["partsPerMinute"] > 0
    assert {c: v["state"] for c, v in before["cameras"]["properties"].items()} == dict.fromkeys(CAMERAS, "online")
    head = event_log.head
    for s in sources.values():  # the engine stops its sources, then its recorder
        s.stop()
    recorder.stop()
    tail = [e for e in event_log.iter_all() if e.offset > head]  # committed before stop() returned
    assert [e.type for e in tail] == ["camera.offline", "camera.offline", "line.stopped"]
    assert json.loads(tail[-1].body)["data"]["reason"] == "shutdown"
    after = features(twins)
    assert after["line"]["properties"]["status"] == "stopped" and after["line"]["properties"]["reason"] == "shutdown"
    assert after["throughput"]["properties"]["partsPerMinute"] == 0
    assert {c: v["state"] for c, v in after["cameras"]["properties"].items()} == dict.fromkeys(CAMERAS, "offline")
    again = EngineRecorder(event_log, twins, "line-1", "edge-1", {}, poll_s=3600)
    again.start({})
    again.stop()
    assert event_log.flush(10) and [e.type for e in event_log.iter_all() if e.offset > head][3:] == []


def test_a_start_after_a_crash_marks_the_last_run_stopped_first(make_log: MakeLog) -> None:
    event_log, twins = make_log()
    event_log.start()
    run_line(event_log, twins)  # and then the process dies: no stop()
    assert event_log.flush(10)
    head = event_log.head
    event_log2, twins2 = make_log()  # the restarted edge
    event_log2.start()
    recorder = EngineRecorder(event_log2, twins2, "line-1", "edge-1", {}, poll_s=3600)
    recorder.start({})
    assert event_log2.flush(10)
    tail = [e for e in event_log2.iter_all() if e.offset > head]
    assert [e.type for e in tail] == ["camera.offline", "camera.offline", "line.stopped"]
    assert json.loads(tail[-1].body)["data"]["reason"] == "unclean_shutdown"
    assert json.loads(tail[0].body)["data"]["last_error"] == "the edge did not stop cleanly"
    line = features(twins2)["line"]["properties"]
    assert (line["status"], line["reason"]) == ("stopped", "unclean_shutdown")
    recorder.stop()


def test_the_retained_twin_on_mqtt_says_stopped_after_a_clean_stop(make_log: MakeLog) -> None:
    tag = uuid.uuid4().hex[:10]
    prefix, edge = f"twinspect-test-{tag}", f"edge-{tag}"  # this test's own (the shared broker serves others)
    event_log, twins = make_log()
    event_log.start()
    fw = MqttForwarder(event_log, twins, MqttSettings(enabled=True, topic_prefix=prefix, twin_interval_s=0.2), edge)
    topic = f"{prefix}/line-1/twin"
    try:
        fw.start()
        recorder, sources = run_line(event_log, twins)
        assert fw.drain(10)
        for s in sources.values():
            s.stop()
        recorder.stop()
        assert fw.drain(10)
        fw.stop()  # as SyncService.stop: drained, then closed (every twin published again)
        stopped = time.time()
        with Subscriber(SHARED_PORT, [topic]) as late:  # a newcomer gets the retained copy
            assert wait_until(lambda: bool(late.on(topic)), 30), "no retained twin"
            doc = late.on(topic)[-1].json()
        assert doc["revision"] == twins.revision("line-1") and doc["features"]["line"]["properties"] == {
            "status": "stopped",
            "since": doc["features"]["line"]["properties"]["since"],
            "reason": "shutdown",
        }
        assert doc["features"]["throughput"]["properties"]["partsPerMinute"] == 0
        assert {c["state"] for c in doc["features"]["cameras"]["properties"].values()} == {"offline"}
        until = ready_until(doc)  # and its connectivity lease ended with the stop (sync.connectivity)
        assert until is not None and until <= stopped + 0.0011 and not Lease("line-1", edge, 0, until).connected()
    finally:
        fw.stop()
        clear_retained(SHARED_PORT, [topic, f"{prefix}/edges/{edge}/status"])
