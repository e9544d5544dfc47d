"""The durable, append-only event log (the outbox every feed, twin and broker reads).

Write, then publish: an event is visible to nobody (feeds, twin, MQTT, NATS) until the
transaction that stores it has committed. One writer per log gives every event the next
``offset`` of the log and the next ``sequence`` of its line inside that transaction, so
both are gap-free even across crashes: a batch that did not commit never took numbers
that anyone saw.

- ``publish(drafts, extra)`` queues drafts for the writer thread, which commits whatever
  has accumulated in one transaction (natural batching: no timer, no added latency);
  ``extra(conn)`` runs in the same transaction (the inspection rows of a verdict). It
  returns a future that resolves to the events once committed, or fails.
- ``append(drafts)`` commits at once in the caller's thread and returns the events.
- ``ingest(events)`` appends events that already carry their line's sequence (the hub,
  from edges), skipping any it already has by id or sequence.
- ``read(after, limit)`` serves from an in-memory ring of recent events (the newest
  ``ring_size``, 4,096 by default: a live reader is near the head; a bigger ring is only
  memory that grows for hours before it stops, ~1 KB an event), else the database;
  ``wait`` / ``async_wait`` block until something past an offset is committed.
- Listeners run in the committing thread, in offset order, after each commit.

Retention (``prune_before``) deletes the oldest events; reading before the oldest kept
offset raises ``OffsetExpired``. The newest event is never pruned, so the head survives.

Faults: nothing the writer took is dropped while it runs. A commit that fails for a
reason that may pass (a full disk, a lost connection, a lock: StoreUnavailableError)
keeps its submissions at the head of the queue, in order, and is retried with
exponential backoff; ``health()`` reports the fault meanwhile, and it clears by itself
on the next commit. Only a submission that can never commit (a constraint it breaks) is
dropped, alone, with its future failed and ``failed`` counted. The queue is bounded
(``max_queue`` events): a publish beyond it is refused at once (its future fails with
``Backlogged``, counted in ``refused``), never accepted and lost. While commits have failed
for ``grace_s``, ``flush`` answers False at once, and ``stop`` fails what is left, counts
it in ``lost`` and logs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, delete, exc, func, select
from sqlalchemy.dialects import postgresql, sqlite

from inspection.store.db import translate, write_bind
from inspection.store.errors import Backlogged, StoreUnavailableError
from sync.errors import BadOffset, OffsetExpired
from sync.events import Draft, Event
from sync.tables import event_lines, events, sync_cursors

log = logging.getLogger(__name__)

Extra = Callable[[Connection], None]
Listener = Callable[[Sequence[Event]], None]


@dataclass(eq=False)
class _Submission:
    drafts: Sequence[Draft]
    extra: Extra | None
    done: Future[list[Event]] = field(default_factory=Future)


@dataclass(frozen=True)
class LogHealth:
    """The writer's state: its fault while commits fail, and what it counted."""

    failing: str | None  # the last error while commits fail; None when the last commit worked
    since: float | None  # wall clock of the first failure in a row
    queued: int  # events waiting for the writer
    retries: int  # failed commits, retried
    refused: int  # events not taken because the queue was full
    failed: int  # submissions dropped because they can never commit
    lost: int  # events still uncommitted when the log stopped


def _transient(error: BaseException) -> bool:
    """Whether the same commit may work later (a full disk, a lost connection, a lock)."""
    return isinstance(error, StoreUnavailableError | exc.OperationalError | OSError)


def astuple_light(e: Event) -> tuple[int, int, str, str, str, str, str]:
    """An event's fields without its parsed body (the ring keeps text only: 50,000 dicts would be a lot)."""
    return e.offset, e.sequence, e.line_id, e.type, e.id, e.time, e.body


def _upsert(conn: Connection, table, key: dict, values: dict) -> None:  # type: ignore[no-untyped-def]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**key, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=values))


class EventLog:
    """See the module docstring."""

    def __init__(
        self,
        engine: Engine,
        *,
        ring_size: int = 4_096,
        batch_max: int = 5_000,
        max_queue: int = 50_000,
        retry_s: tuple[float, float] = (0.05, 2.0),
        grace_s: float = 5.0,
    ) -> None:
        self.engine = engine
        self._write_engine = write_bind(engine)
        self.batch_max, self.max_queue = batch_max, max_queue
        self.retry_s = retry_s  # (first, longest) wait between failed commits
        self.grace_s = grace_s  # how long flush and stop wait on commits that keep failing
        self._ring: deque[Event] = deque(maxlen=ring_size)
        self._cond = threading.Condition()
        self._write_lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._queue: deque[_Submission] = deque()
        self._queued = 0  # events in the queue
        self._queue_cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._give_up_at = 0.0
        self._busy = False
        self._fault: tuple[str, float] | None = None  # (last error, since) while commits fail
        self._streak = 0  # failed commits in a row (sets the backoff)
        self._retry_at = 0.0
        self._logged_at = 0.0
        self.retries = self.refused = self.lost = 0
        self.failed = 0  # submissions dropped because their transaction can never commit
        self._head, self._first, self._sequences = self._load()

    # state -------------------------------------------------------------------------------------
    def _load(self) -> tuple[int, int, dict[str, int]]:
        try:
            with self.engine.connect() as conn:
                head = conn.execute(select(func.max(events.c.offset))).scalar() or 0
                first = conn.execute(select(func.min(events.c.offset))).scalar() or head + 1
                seqs = {row.line_id: int(row.last_sequence) for row in conn.execute(select(event_lines))}
        except exc.DBAPIError as error:  # a damaged file, an unreachable server: one line at start
            raise translate(error, self.engine.url, "read the event log of") from error
        return int(head), int(first), seqs

    @property
    def head(self) -> int:
        """Offset of the newest committed event (0 when empty)."""
        return self._head

    @property
    def first(self) -> int:
        """Oldest offset still kept (head + 1 when empty)."""
        return self._first

    def lines(self) -> dict[str, int]:
        """Every line with events, and its last sequence."""
        with self._cond:
            return dict(self._sequences)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # writing -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="event-log", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Commit everything queued, then stop the writer thread.

        While commits fail, the writer keeps retrying for at most ``grace_s`` (within
        ``timeout``), then fails what is left and logs how much that was (``lost``).
        """
        if self._thread is None:
            return
        with self._queue_cond:
            self._stopping = True
            self._give_up_at = time.monotonic() + min(timeout, self.grace_s)
            self._queue_cond.notify_all()
        self._thread.join(timeout)
        self._thread = None

    def publish(self, drafts: Sequence[Draft], extra: Extra | None = None) -> Future[list[Event]]:
        """Queue drafts (and their rows) for the writer thread; returns at once.

        The future resolves to the committed events, or fails: ``Backlogged`` at once when the
        queue is full, the transaction's error when it can never commit.
        """
        sub = _Submission(drafts, extra)
        if not drafts and extra is None:
            sub.done.set_result([])
            return sub.done
        with self._queue_cond:
            if self._queue and self._queued + len(drafts) > self.max_queue:
                self.refused += len(drafts)
                sub.done.set_exception(
                    Backlogged(
                        f"event log: {self._queued} events are waiting to be committed "
                        f"(at most {self.max_queue}); {len(drafts)} refused"
                    )
                )
                if time.monotonic() - self._logged_at > 10.0:
                    self._logged_at = time.monotonic()
                    log.error("event log queue full (%d events): %d refused so far", self._queued, self.refused)
                return sub.done
            self._queue.append(sub)
            self._queued += len(drafts)
            self._queue_cond.notify()
        return sub.done

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything published so far is committed.

        False on timeout, without a running writer, or once commits have failed for ``grace_s``
        (a short failure is waited out: the writer retries it).
        """

        def given_up() -> bool:
            return self._fault is not None and time.time() - self._fault[1] >= self.grace_s

        with self._queue_cond:
            self._queue_cond.wait_for(
                lambda: (not self._queue and not self._busy) or given_up() or not self._writing(), timeout
            )
            return not self._queue and not self._busy

    def health(self) -> LogHealth:
        with self._queue_cond:
            fault = self._fault
            return LogHealth(
                fault[0] if fault else None,
                fault[1] if fault else None,
                self._queued,
                self.retries,
                self.refused,
                self.failed,
                self.lost,
            )

    def _writing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _next_batch(self) -> list[_Submission] | None:
        """Under the queue lock: the next submissions to commit (None: stop), waiting out a retry delay."""
        while True:
            now = time.monotonic()
            if self._stopping and self._queue and self._fault is not None and now >= self._give_up_at:
                self._abandon()
            if not self._queue:
                if self._stopping:
                    return None
                self._queue_cond.wait()
                continue
            if now < self._retry_at:
                wake = min(self._retry_at, self._give_up_at) if self._stopping else self._retry_at
                self._queue_cond.wait(max(0.0, wake - now))
                continue
            batch, n = [], 0
            while self._queue and (n == 0 or n + len(self._queue[0].drafts) <= self.batch_max):
                sub = self._queue.popleft()
                batch.append(sub)
                n += len(sub.drafts)
            self._queued -= n
            self._busy = True
            return batch

    def _abandon(self) -> None:
        """Stopping while commits fail: fail every queued submission, count and log it."""
        assert self._fault is not None
        subs, n = list(self._queue), self._queued
        self._queue.clear()
        self._queued = 0
        self.lost += n
        log.error("event log stopped with %d events in %d submissions not committed: %s", n, len(subs), self._fault[0])
        for sub in subs:
            sub.done.set_exception(
                StoreUnavailableError(f"the event log stopped before this could be committed ({self._fault[0]})")
            )

    def _run(self) -> None:
        while True:
            with self._queue_cond:
                batch = self._next_batch()
                if batch is None:
                    return
            left: list[_Submission] = []
            try:
                left = self._commit_submissions(batch)
            except Exception as error:  # supervision: the writer never dies; what it held is retried
                log.exception("event log writer failed; retrying")
                left = [sub for sub in batch if not sub.done.done()]
                self._note(error)
            finally:
                with self._queue_cond:
                    for sub in reversed(left):  # back at the head, in order
                        self._queue.appendleft(sub)
                        self._queued += len(sub.drafts)
                    self._busy = False
                    self._queue_cond.notify_all()

    def _note(self, error: BaseException | None) -> None:
        """Record a commit's outcome: a failure sets the fault and the next retry time, a success clears it."""
        with self._queue_cond:
            if error is None:
                if self._fault is not None:
                    log.warning("event log commits again after %.1f s of failures", time.time() - self._fault[1])
                self._fault, self._retry_at, self._streak = None, 0.0, 0
                return
            if self._fault is None:
                log.error("event log commit failed (%s); retrying until it works", error)
            first, longest = self.retry_s
            self._retry_at = time.monotonic() + min(longest, first * 2 ** min(self._streak, 30))
            self._streak += 1
            self.retries += 1
            self._fault = (str(error), self._fault[1] if self._fault else time.time())
            self._queue_cond.notify_all()

    def _commit_submissions(self, batch: list[_Submission]) -> list[_Submission]:
        """Commit ``batch``; returns the submissions to retry (a transient failure), in order."""
        try:
            out = self._commit([d for s in batch for d in s.drafts], [s.extra for s in batch if s.extra])
        except Exception as error:
            if _transient(error):
                self._note(error)
                return batch
            if len(batch) == 1:
                log.error(
                    "event log: a submission of %d events can never commit (%s); dropped", len(batch[0].drafts), error
                )
                self.failed += 1
                batch[0].done.set_exception(error)
                return []
            log.warning("event log: a batch of %d submissions failed (%s); committing one by one", len(batch), error)
            for i, sub in enumerate(batch):
                left = self._commit_submissions([sub])
                if left:
                    return left + batch[i + 1 :]
            return []
        self._note(None)
        i = 0
        for sub in batch:
            sub.done.set_result(out[i : i + len(sub.drafts)])
            i += len(sub.drafts)
        return []

    def append(self, drafts: Sequence[Draft], extra: Extra | None = None) -> list[Event]:
        """Commit ``drafts`` now (in the caller's thread) and return them as events."""
        return self._commit(list(drafts), [extra] if extra else [])

    def ingest(self, incoming: Iterable[Event]) -> list[Event]:
        """Append events made by another log (keeping their line sequence); skip known ones."""
        items = list(incoming)
        if not items:
            return []
        with self._write_lock:
            with self.engine.connect() as conn:
                known = set(conn.execute(select(events.c.id).where(events.c.id.in_([e.id for e in items]))).scalars())
            fresh, seqs = [], dict(self._sequences)
            for ev in items:
                if ev.id in known or ev.sequence <= seqs.get(ev.line_id, 0):
                    continue
                if ev.sequence != seqs.get(ev.line_id, 0) + 1:
                    log.warning(
                        "line %s: sequence jumps from %d to %d (an edge lost events?)",
                        ev.line_id,
                        seqs.get(ev.line_id, 0),
                        ev.sequence,
                    )
                seqs[ev.line_id] = ev.sequence
                known.add(ev.id)
                fresh.append(ev)
            return self._commit(fresh, [])

    def _commit(self, items: Sequence[Draft | Event], extras: Sequence[Extra]) -> list[Event]:
        with self._write_lock:
            offset, seqs = self._head, dict(self._sequences)
            out: list[Event] = []
            for item in items:
                offset += 1
                if isinstance(item, Draft):
                    seqs[item.line_id] = seqs.get(item.line_id, 0) + 1
                    out.append(Event.from_draft(item, offset, seqs[item.line_id]))
                else:
                    seqs[item.line_id] = max(seqs.get(item.line_id, 0), item.sequence)
                    out.append(Event(offset, item.sequence, item.line_id, item.type, item.id, item.time, item.body))
            touched = {e.line_id for e in out}
            try:
                with self._write_engine.begin() as conn:
                    for extra in extras:
                        extra(conn)
                    if out:
                        conn.execute(
                            events.insert(),
                            [
                                {
                                    "offset": e.offset,
                                    "id": e.id,
                                    "line_id": e.line_id,
                                    "sequence": e.sequence,
                                    "type": e.type,
                                    "time": e.time,
                                    "body": e.body,
                                }
                                for e in out
                            ],
                        )
                    for line in touched:
                        _upsert(conn, event_lines, {"line_id": line}, {"last_sequence": seqs[line]})
            except exc.OperationalError as error:  # full disk, lock, lost connection: the caller may retry
                raise translate(error, self.engine.url, "write to") from error
            for listener in self._listeners:  # before readers see them: a twin is never behind its feed
                try:
                    listener(out)
                except Exception:
                    log.exception("event log listener %r failed", listener)
            with self._cond:
                self._head, self._sequences = offset, seqs
                if self._first > offset:  # the log was empty
                    self._first = out[0].offset if out else self._first
                self._ring.extend(e if e.parsed is None else Event(*astuple_light(e)) for e in out)
                self._cond.notify_all()
            if out:
                self._wake_async()
            return out

    # reading -----------------------------------------------------------------------------------
    def check_after(self, after: int) -> None:
        """Raise unless events after ``after`` can be read (expired or past the end)."""
        if after < 0:
            raise BadOffset(f"offset {after}: must be >= 0")
        if after > self._head:
            raise BadOffset(f"offset {after} is past the end of the log (last offset {self._head})")
        if after + 1 < self._first:
            raise OffsetExpired(
                f"offset {after} is older than retention: the oldest kept event has offset "
                f"{self._first}; resume from {self._first - 1} or rebuild from the twin",
                self._first,
            )

    def read(
        self, after: int, limit: int = 1000, types: Sequence[str] | None = None, line: str | None = None
    ) -> list[Event]:
        """Up to ``limit`` events with offset > ``after``, in offset order, optionally filtered."""
        return self.scan(after, limit, types, line)[0]

    def scan(
        self, after: int, limit: int = 1000, types: Sequence[str] | None = None, line: str | None = None
    ) -> tuple[list[Event], int]:
        """``read``, plus the offset up to which the log was looked at (resume a filtered read there)."""
        self.check_after(after)
        wanted = set(types) if types else None

        def keep(e: Event) -> bool:
            return (wanted is None or e.type in wanted) and (line is None or e.line_id == line)

        with self._cond:
            head = self._head
            ring0 = self._ring[0].offset if self._ring else None
            if ring0 is not None and ring0 <= after + 1:
                out: list[Event] = []
                for i in range(after + 1 - ring0, len(self._ring)):
                    e = self._ring[i]
                    if keep(e):
                        out.append(e)
                        if len(out) >= limit:
                            return out, e.offset
                return out, head
        c = events.c
        query = select(c.offset, c.sequence, c.line_id, c.type, c.id, c.time, c.body).where(
            c.offset > after, c.offset <= head
        )  # never past the head it reports as scanned
        if wanted is not None:
            query = query.where(events.c.type.in_(sorted(wanted)))
        if line is not None:
            query = query.where(events.c.line_id == line)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(events.c.offset).limit(limit)).all()
        found = [Event(*row) for row in rows]
        return found, (found[-1].offset if len(found) >= limit else head)

    def iter_all(
        self, after: int = 0, upto: int | None = None, chunk: int = 20_000, line: str | None = None
    ) -> Iterable[Event]:
        """Every event (of ``line``) with ``after`` < offset <= ``upto`` (default: head), in order."""
        end = self._head if upto is None else upto
        while after < end:
            batch = self.read(after, chunk, line=line)
            for e in batch:
                if e.offset > end:
                    return
                yield e
            if len(batch) < chunk:
                return
            after = batch[-1].offset

    def wait(self, after: int, timeout: float) -> bool:
        """Block until the head passes ``after``; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._head > after, timeout)

    async def async_wait(self, after: int, timeout: float) -> bool:
        """``wait`` for asyncio code: never blocks the event loop."""
        if self._head > after:
            return True
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        self._async_waiters.add(waiter)
        try:
            if self._head > after:
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter[1].wait(), timeout)
            return self._head > after
        finally:
            self._async_waiters.discard(waiter)

    def _wake_async(self) -> None:
        for loop, ev in list(self._async_waiters):
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # that loop is closed
                self._async_waiters.discard((loop, ev))

    # cursors and retention -----------------------------------------------------------------------
    def cursor(self, name: str) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(sync_cursors.c.offset).where(sync_cursors.c.name == name)).scalar()
        return int(value or 0)

    def set_cursor(self, name: str, offset: int) -> None:
        with self._write_engine.begin() as conn:
            _upsert(conn, sync_cursors, {"name": name}, {"offset": offset})

    def offset_before_time(self, time_iso: str) -> int:
        """The last offset whose event time is before ``time_iso`` (0 if none)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(events.c.offset)).where(events.c.time < time_iso)).scalar()
        return int(value or 0)

    def prune_before(self, offset: int, extra: Extra | None = None) -> int:
        """Delete events with offset < ``offset`` (never the newest); returns how many."""
        with self._write_lock:
            cut = min(offset, self._head)
            if cut <= self._first:
                return 0
            with self._write_engine.begin() as conn:
                if extra is not None:
                    extra(conn)
                n = conn.execute(delete(events).where(events.c.offset < cut)).rowcount
            with self._cond:
                self._first = cut
                while self._ring and self._ring[0].offset < cut:
                    self._ring.popleft()
            return int(n or 0)
