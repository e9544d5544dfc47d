"""The durable event log: gap-free numbering, the outbox, crashes, ingest, retention, reads."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text

from inspection.store import open_database
from sync.errors import BadOffset, OffsetExpired
from sync.events import Event
from sync.log import EventLog
from sync.retention import prune
from sync.twin import TwinStore
from tests.sync.conftest import draft, story

MakeLog = Callable[[], tuple[EventLog, TwinStore]]


def _assert_gap_free(events: list[Event]) -> None:
    assert [e.offset for e in events] == list(range(events[0].offset, events[0].offset + len(events)))
    by_line: dict[str, list[int]] = {}
    for e in events:
        by_line.setdefault(e.line_id, []).append(e.sequence)
    for seqs in by_line.values():
        assert seqs == list(range(1, len(seqs) + 1))


def test_append_numbers_offsets_and_per_line_sequences_and_a_reopen_continues(make_log: MakeLog):
    log, _ = make_log()
    first = log.append([draft("part.entered", i, line="line-a" if i % 3 else "line-b") for i in range(10)])
    assert [e.offset for e in first] == list(range(1, 11))
    assert [e.sequence for e in first if e.line_id == "line-a"] == list(range(1, 7))
    assert [e.sequence for e in first if e.line_id == "line-b"] == [1, 2, 3, 4]
    body = json.loads(first[0].body)
    assert body["specversion"] == "1.0" and body["sequence"] == 1 and body["lineid"] == "line-b"
    assert body["type"] == "io.twinspect.part.entered" and body["subject"] == "p0"
    again, _ = make_log()
    more = again.append([draft("part.exited", 1, line="line-a")])
    assert (more[0].offset, more[0].sequence) == (11, 7)
    _assert_gap_free(again.read(0, 100))


def test_publish_from_many_threads_is_gap_free_and_batched(make_log: MakeLog):
    log, twins = make_log()
    log.start()

    def producer(k: int) -> None:
        for i in range(50):
            log.publish([draft("part.entered", k * 1000 + i, line=f"line-{k % 2}"), draft("part.exited", i)])

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.flush(30)
    events = log.read(0, 10_000)
    assert len(events) == 400 and log.head == 400
    _assert_gap_free(events)
    assert twins.revision("line-1") == log.lines()["line-1"]


def test_a_failing_outbox_row_drops_only_its_own_events(make_log: MakeLog, db: Engine):
    log, _ = make_log()
    with db.begin() as conn:
        conn.execute(text("CREATE TABLE side (k TEXT PRIMARY KEY)"))

    def row(key: str) -> Callable[[Connection], None]:
        return lambda conn: conn.execute(text("INSERT INTO side VALUES (:k)"), {"k": key})

    log.publish([draft("part.inspected", 1)], row("a"))
    log.publish([draft("part.inspected", 2)], row("a"))  # duplicate key: this transaction fails
    log.publish([draft("part.inspected", 3)], row("c"))
    log.start()
    assert log.flush(10)
    events = log.read(0, 10)
    assert [json.loads(e.body)["data"]["part_id"] for e in events] == ["p1", "p3"]
    _assert_gap_free(events)
    assert log.failed == 1
    with db.connect() as conn:
        assert conn.execute(text("SELECT k FROM side ORDER BY k")).scalars().all() == ["a", "c"]


CRASH_WRITER = """
import sys, time
from inspection.store import open_database
from sync.log import EventLog
from tests.sync.conftest import draft
log = EventLog(open_database(sys.argv[1]))
log.start()
i = 0
while True:
    log.publish([draft("part.entered", i), draft("part.exited", i, line="line-2")])
    i += 1
    if i % 50 == 0:
        print(log.head, flush=True)
        time.sleep(0.001)
"""


def test_kill_9_mid_flood_keeps_the_log_gap_free_and_reopenable(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    open_database(url).dispose()
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_WRITER, url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if int(line) > 3000:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    db = open_database(url)
    with db.connect() as conn:
        assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    log = EventLog(db)
    events = list(log.iter_all())
    assert len(events) == log.head > 3000
    _assert_gap_free(events)
    after = log.append([draft("part.entered", 0)])[0]
    assert after.offset == log.head and after.sequence == log.lines()["line-1"]
    assert after.sequence == sum(1 for e in events if e.line_id == "line-1") + 1
    db.dispose()


def test_ingest_keeps_sequences_and_skips_what_it_has(make_log: MakeLog, db: Engine, tmp_path: Path):
    edge_db = open_database(f"sqlite:///{tmp_path / 'edge.db'}")
    edge = EventLog(edge_db).append(story(5, line="line-e"))
    hub, twins = make_log()
    assert len(hub.ingest(edge[:10])) == 10
    again = hub.ingest([Event.from_body(e.body) for e in edge[5:]])  # overlap: 5 already there
    assert [e.sequence for e in again] == [e.sequence for e in edge[10:]]
    assert hub.ingest(edge) == []
    assert [e.id for e in hub.read(0, 1000)] == [e.id for e in edge]
    assert twins.document_text("line-e") == TwinStore(EventLog(edge_db)).document_text("line-e")
    edge_db.dispose()


def test_retention_cuts_old_events_keeps_the_twin_and_rejects_expired_reads(make_log: MakeLog):
    log, twins = make_log()
    log.append(story(60))
    head, current = log.head, twins.document_text("line-1")
    at_150 = twins.document_at("line-1", 150)
    assert prune(log, twins, max_events=100) == head - 100
    assert log.first == head - 99 and log.head == head
    with pytest.raises(OffsetExpired) as info:
        log.read(10, 5)
    assert info.value.oldest == log.first
    assert [e.offset for e in log.read(log.first - 1, 3)] == [log.first, log.first + 1, log.first + 2]
    reopened, twins2 = make_log()  # rebuilt from the snapshot at the cut plus the kept events
    assert twins2.document_text("line-1") == current
    assert twins2.document_at("line-1", 150) == at_150
    with pytest.raises(OffsetExpired):
        twins2.document_at("line-1", 20)
    assert prune(reopened, twins2, max_events=1) == 99 and reopened.first == reopened.head
    assert TwinStore(reopened).document_text("line-1") == current


def test_retention_by_age(make_log: MakeLog):
    log, twins = make_log()
    log.append([draft("part.entered", i) for i in range(120)])  # times 10:00:00 .. 10:01:59
    cutoff = time.mktime(time.strptime("2026-11-21T10:01:00", "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert prune(log, twins, max_age_s=3600, now=cutoff + 3600) == 60
    assert json.loads(log.read(log.first - 1, 1)[0].body)["time"] == "2026-11-21T10:01:00.000Z"


def test_reads_filter_and_refuse_bad_offsets(make_log: MakeLog):
    log, _ = make_log()
    log.append(story(10) + story(3, line="line-2"))
    inspected = log.read(0, 1000, types=["part.inspected"], line="line-1")
    assert inspected and all(e.type == "part.inspected" and e.line_id == "line-1" for e in inspected)
    page, scanned = log.scan(0, 2, types=["line.stopped"])
    assert [e.line_id for e in page] == ["line-1", "line-2"] and scanned == page[-1].offset
    none, scanned = log.scan(0, 10, types=["part.uninspected"], line="line-2")
    assert none == [] and scanned == log.head
    with pytest.raises(BadOffset, match="past the end"):
        log.read(log.head + 1)
    with pytest.raises(BadOffset):
        log.read(-1)


def test_async_wait_wakes_on_commit(make_log: MakeLog):
    log, _ = make_log()

    async def waiter() -> tuple[bool, bool]:
        quiet = await log.async_wait(0, 0.05)
        threading.Timer(0.05, lambda: log.append([draft("part.entered", 1)])).start()
        woke = await log.async_wait(0, 5.0)
        return quiet, woke

    assert asyncio.run(waiter()) == (False, True)
