"""The event log's writer through a database that refuses writes (issue 10, item 3).

The refusal is SQLite's own "database or disk is full", raised where the driver would raise
it (a cursor-execute hook on the INSERT into ``events``), switched on and off by the test.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, event

from inspection.store import StoreUnavailableError
from inspection.store.errors import Backlogged, StorageFullError
from sync.log import EventLog
from tests.conftest import wait_until
from tests.sync.conftest import draft


class DiskFull:
    """Makes every INSERT into the events table fail as on a full disk while ``on``."""

    def __init__(self, db: Engine) -> None:
        self.on = False
        self.refused = 0
        event.listen(db, "before_cursor_execute", self._hook)

    def _hook(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.on and statement.lstrip().upper().startswith("INSERT INTO EVENTS"):
            self.refused += 1
            raise sqlite3.OperationalError("database or disk is full")


def parts(log: EventLog) -> list[str]:
    return [json.loads(e.body)["data"]["part_id"] for e in log.read(0, 1000)]


def test_commits_the_disk_refuses_are_retried_in_order_and_nothing_is_dropped(db: Engine):
    full = DiskFull(db)
    log = EventLog(db, retry_s=(0.01, 0.1), grace_s=0.5)
    log.start()
    log.publish([draft("part.entered", 0)]).result(10)
    full.on = True
    futures = [log.publish([draft("part.entered", i)]) for i in range(1, 6)]
    assert wait_until(lambda: log.health().retries >= 3 and log.health().queued == 5, timeout=10)
    health = log.health()
    assert health.failing is not None and "no space" in health.failing
    assert not any(f.done() for f in futures)
    t0 = time.monotonic()
    assert not log.flush(30.0)  # once failing for grace_s, it says so instead of waiting out the timeout
    assert time.monotonic() - t0 < 5.0
    full.on = False
    assert [len(f.result(10)) for f in futures] == [1] * 5
    assert parts(log) == [f"p{i}" for i in range(6)]  # in order, gap-free, none dropped
    health = log.health()
    assert (health.failing, health.failed, health.lost, health.queued) == (None, 0, 0, 0)
    log.stop()


def test_a_full_queue_refuses_at_once_and_never_accepts_what_it_would_lose(db: Engine):
    full = DiskFull(db)
    full.on = True
    log = EventLog(db, max_queue=4, retry_s=(0.01, 0.05))
    log.start()
    taken = [log.publish([draft("part.entered", i)]) for i in range(4)]
    refused = log.publish([draft("part.entered", 99)])
    with pytest.raises(Backlogged, match="at most 4"):
        refused.result(1)
    assert log.health().refused == 1
    full.on = False
    assert all(len(f.result(10)) == 1 for f in taken)
    assert parts(log) == ["p0", "p1", "p2", "p3"]
    log.stop()


def test_stop_while_the_disk_is_full_gives_up_after_the_grace_and_counts(db: Engine, caplog: pytest.LogCaptureFixture):
    full = DiskFull(db)
    full.on = True
    log = EventLog(db, retry_s=(0.01, 0.05), grace_s=0.3)
    log.start()
    futures = [log.publish([draft("part.entered", i), draft("part.exited", i)]) for i in range(3)]
    assert wait_until(lambda: full.refused >= 1, timeout=10)
    t0 = time.monotonic()
    log.stop(timeout=30.0)
    assert time.monotonic() - t0 < 5.0
    assert log.health().lost == 6
    with pytest.raises(StoreUnavailableError, match="stopped before"):
        futures[0].result(0)
    assert "6 events in 3 submissions not committed" in caplog.text


def test_append_on_a_full_disk_raises_the_store_error_the_api_maps_to_503(db: Engine):
    full = DiskFull(db)
    full.on = True
    log = EventLog(db)
    with pytest.raises(StorageFullError, match="no space left"):
        log.append([draft("review.corrected", 1)])
    full.on = False
    assert len(log.append([draft("review.corrected", 1)])) == 1  # nothing half-written: the numbering goes on
    assert log.head == 1


def test_a_log_on_a_damaged_database_says_so_in_one_line(tmp_path: Any):
    from inspection.store import NotADatabaseError, open_database

    path = tmp_path / "damaged.db"
    db = open_database(f"sqlite:///{path}")
    EventLog(db).append([draft("part.entered", i) for i in range(200)])
    db.dispose()
    damage(path, lambda n: range(n // 2, n))  # the events' pages (written last), maybe later tables' schema
    with pytest.raises(NotADatabaseError, match="damaged.db"):  # found at the open or at the log's first read
        db = open_database(f"sqlite:///{path}")
        try:
            EventLog(db)
        finally:
            db.dispose()


def damage(path: Any, pages: Callable[[int], range]) -> None:
    """Overwrite these pages (4 KiB) of an SQLite file with garbage."""
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        for page in pages(size // 4096):
            fh.seek(page * 4096)
            fh.write(b"\xa5" * 4096)
