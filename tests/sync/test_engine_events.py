"""A real replay (shipped models, real boards) writes a schema-valid, gap-free event log in step with its store."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import jsonschema_rs
from sqlalchemy import text

from inspection.store import open_database
from sync.log import EventLog
from sync.schemas import event_schema
from sync.twin import TwinStore


def test_replay_events_match_the_store_and_validate(stored_replay):
    # the suite's shared stored replay (tests/conftest.py): the shipped models over 6 real boards, 12 parts
    data, summary = stored_replay.data, stored_replay.summary
    db = open_database(f"sqlite:///{data / 'twinspect.db'}")
    log = EventLog(db)
    events = list(log.iter_all())
    kinds = Counter(e.type for e in events)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    validators = {k: jsonschema_rs.validator_for(event_schema(k)) for k in kinds}
    for e in events:
        errors = [str(err) for err in validators[e.type].iter_errors(json.loads(e.body))]
        assert errors == [], (e.type, errors)
    assert kinds["part.inspected"] == summary["inspected"] == 12
    assert kinds["part.entered"] == kinds["part.exited"] == summary["boards_seen"]
    assert kinds["model.activated"] == 2 and kinds["line.started"] == 1 and kinds["camera.online"] == 1
    with db.connect() as conn:
        stored = set(conn.execute(text("SELECT id FROM inspections")).scalars())
    announced = {json.loads(e.body)["data"]["inspection_id"] for e in events if e.type == "part.inspected"}
    assert announced == stored  # the outbox: every stored inspection announced, nothing announced unstored
    doc = json.loads(TwinStore(log).document_text("line-1")[1])
    counters = doc["features"]["counters"]["properties"]
    assert counters["inspected"] == 12 and sum(counters["verdicts"].values()) == 12
    assert counters["verdicts"]["fail"] + counters["verdicts"]["uncertain"] == summary["flagged"]
    db.dispose()


def test_live_counters_come_from_the_twin_and_survive_a_restart(tmp_path: Path):
    from types import SimpleNamespace

    from api.live_view import LiveView
    from inspection.pipeline.events import LineState
    from inspection.pipeline.status import EngineStatus
    from inspection.pipeline.telemetry import Telemetry
    from tests.sync.conftest import story

    db = open_database(f"sqlite:///{tmp_path / 'live.db'}")
    EventLog(db).append(story(14))  # an earlier run on this data dir
    snapshot = EngineStatus(
        "line-1", LineState.RUNNING, None, (), {"pass": 0, "fail": 0, "uncertain": 0}, (), {}, (), {}
    )
    fresh_engine = SimpleNamespace(status=lambda: snapshot, add_listener=lambda listener: None, telemetry=Telemetry())
    status = LiveView(fresh_engine, TwinStore(EventLog(db))).status()  # type: ignore[arg-type]
    assert status["counters"]["boards_seen"] == 14 and status["counters"]["uninspected"] == 2
    assert status["counters"]["inspected"] == 12 == sum(status["counters"][k] for k in ("pass", "fail", "uncertain"))
    assert LiveView(fresh_engine).status()["counters"]["boards_seen"] == 0  # type: ignore[arg-type]
    db.dispose()
