"""The twin projection: known answers, replay from zero byte for byte, any past revision."""

from __future__ import annotations

import json
from collections.abc import Callable

from sync.events import dumps
from sync.log import EventLog
from sync.twin import TwinStore, apply, document, new_state
from tests.sync.conftest import draft, story

MakeLog = Callable[[], tuple[EventLog, TwinStore]]


def test_known_answers_of_a_short_story(make_log: MakeLog):
    log, twins = make_log()
    log.append(
        [
            draft("model.activated", 3),
            draft("camera.online", 0),
            draft("line.started", 0),
            draft("part.entered", 1),
            draft("part.inspected", 1, verdict="fail"),
            draft("part.exited", 1),
            draft("part.entered", 2),
            draft("part.inspected", 2),
            draft("part.entered", 3),
            draft("part.uninspected", 3),
            draft("review.corrected", 1),
        ]
    )
    revision, text = twins.document_text("line-1")
    doc = json.loads(text)
    assert revision == doc["revision"] == 11 and doc["thingId"] == "twinspect:line-1"
    f = doc["features"]
    assert f["line"]["properties"]["status"] == "running"
    assert f["cameras"]["properties"]["cam1"]["state"] == "online"
    assert f["models"]["properties"]["defect"]["version"] == "3"
    c = f["counters"]["properties"]
    assert (c["entered"], c["inspected"], c["uninspected"], c["exited"], c["corrected"]) == (3, 2, 1, 1, 1)
    assert c["verdicts"] == {"pass": 2, "fail": 0, "uncertain": 0}  # the fail was corrected to pass
    assert c["defects"] == {"open": 1}
    assert f["quality"]["properties"] == {"yield": 1.0, "coverage": round(2 / 3, 6)}
    recent = f["recentParts"]["properties"]["items"]
    assert [it["partId"] for it in recent] == ["p2", "p1"] and recent[1]["verdict"] == "pass"
    assert recent[1]["reviewed"] is True


def test_throughput_counts_the_last_minute_of_event_time():
    state = new_state("line-1")
    for i in range(90):  # one inspection per second, 10:00:00 .. 10:01:29
        apply(state, json.loads(dumps(draft("part.inspected", i).envelope(i + 1))), i + 1)
    assert document(state)["features"]["throughput"]["properties"]["partsPerMinute"] == 60.0
    assert len(state["inspected_per_second"]) <= 62  # bounded state


def test_replay_from_zero_reproduces_the_current_document_byte_for_byte(make_log: MakeLog):
    log, twins = make_log()
    log.start()
    for chunk in range(5):
        log.publish(story(40, line="line-1")[chunk::5])
        log.publish(story(10, line="line-2"))
    assert log.flush(30)
    live = {line: twins.document_text(line) for line in ("line-1", "line-2")}
    _, replayed = make_log()
    assert {line: replayed.document_text(line) for line in live} == live
    state = new_state("line-2")  # the pure fold over the raw bodies gives the same bytes too
    for e in log.iter_all(line="line-2"):
        apply(state, json.loads(e.body), e.offset)
    assert dumps(document(state)) == live["line-2"][1]


def test_every_past_revision_rebuilds_exactly(make_log: MakeLog):
    log, twins = make_log()
    seen = {}
    for d in story(12):
        log.append([d])
        revision, text = twins.document_text("line-1")
        seen[revision] = text
    for revision, text in seen.items():
        assert twins.document_at("line-1", revision) == text
    assert json.loads(twins.document_at("line-1", 0))["revision"] == 0
