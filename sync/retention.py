"""Retention of the event log: keep the newest N events and/or the events of the last D seconds.

Before the oldest events go, the twin state of every line at the cut is stored as a
snapshot (in the same transaction as the delete), so the current twin and any revision
from the cut on can still be rebuilt. Readers asking for older offsets get
``OffsetExpired`` (HTTP 410) naming the oldest offset kept.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, select

from sync.events import rfc3339
from sync.log import EventLog
from sync.tables import twin_snapshots
from sync.twin import TwinStore


def cut_offset(
    log: EventLog, *, max_events: int | None = None, max_age_s: float | None = None, now: float | None = None
) -> int:
    """The first offset retention keeps (never past the newest event)."""
    cut = log.first
    if max_events is not None:
        cut = max(cut, log.head - max_events + 1)
    if max_age_s is not None:
        limit = rfc3339((time.time() if now is None else now) - max_age_s)
        cut = max(cut, log.offset_before_time(limit) + 1)
    return min(cut, log.head)


def prune(
    log: EventLog,
    twins: TwinStore,
    *,
    max_events: int | None = None,
    max_age_s: float | None = None,
    now: float | None = None,
) -> int:
    """Apply retention; returns how many events were deleted."""
    cut = cut_offset(log, max_events=max_events, max_age_s=max_age_s, now=now)
    if cut <= log.first:
        return 0
    rows = twins.snapshot_rows(cut - 1)

    def save_snapshots(conn: Connection) -> None:
        for row in rows:
            exists = conn.execute(
                select(twin_snapshots.c.revision).where(
                    twin_snapshots.c.line_id == row["line_id"], twin_snapshots.c.revision == row["revision"]
                )
            ).first()
            if exists is None:
                conn.execute(twin_snapshots.insert(), row)

    return log.prune_before(cut, save_snapshots)
