"""The hub: consume every edge's events from NATS JetStream into one event log.

A durable pull consumer (explicit acks, from the start of the stream) hands batches of
messages to the hub, which parses and checks each event, appends the new ones with
``EventLog.ingest`` (which keeps each line's sequence and drops events it already has), and
acks them only after that write committed. So a crash anywhere loses nothing: what was not
acked is delivered again and dropped as a duplicate if it had been stored.

Each line must arrive in sequence order, since ``ingest`` drops an event whose sequence is at
or below its line's last one. JetStream can deliver out of order (an edge that re-sends after
a broken connection, a redelivery after a hub crash), so an event that leaves a gap is held
back, unacked, until the missing ones arrive; after ``gap_wait_s`` the hub accepts the gap
and goes on. Malformed messages are logged and terminated (never redelivered, never stall).

With a ``projection`` (``sync.hub_store.InspectionProjection``), every event stored, or found
already stored, is also handed to ``projection.apply`` before it is acked (the hub's copy of
the edges' inspections), and the evidence it queued is fetched after each step.

Connectivity: the hub also watches the key-value bucket where each edge renews its lines'
leases (``sync.connectivity``); ``lease(line)`` is the latest one, which the hub's twin shows
(``readyUntil`` in the past: the edge that feeds the line stopped, or died).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from inspection.store import StoreUnavailableError
from sync.config import NatsSettings
from sync.connectivity import Lease
from sync.errors import InvalidEvent, SyncError
from sync.events import Event
from sync.log import EventLog
from sync.nats import connect, ensure_stream, leases_bucket
from sync.schemas import DATA_MODELS

if TYPE_CHECKING:
    from sync.hub_store import InspectionProjection

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class _Item:
    event: Event
    msg: Msg


def check_event(event: Event) -> None:
    """Raise ``InvalidEvent`` unless the event fits the log's columns and its type's schema."""
    try:
        if len(event.id) > 36:
            raise ValueError("id longer than a UUID")
        uuid.UUID(event.id)
        datetime.fromisoformat(event.time.replace("Z", "+00:00"))
        DATA_MODELS[event.type].model_validate(event.cloudevent().get("data"))
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise InvalidEvent(f"event {event.id[:40]!r} ({event.type}): {error}") from None


def _stream_seq(item: _Item) -> int:
    return int(item.msg.metadata.sequence.stream)


class Hub:
    """Consumes the JetStream stream into ``event_log`` in a thread of its own; see the module docstring."""

    def __init__(
        self,
        event_log: EventLog,
        settings: NatsSettings,
        *,
        batch: int = 500,
        fetch_timeout_s: float = 1.0,
        ack_wait_s: float = 30.0,
        gap_wait_s: float = 60.0,
        max_ack_pending: int = 20_000,
        projection: InspectionProjection | None = None,
    ) -> None:
        self.log, self.settings, self.batch = event_log, settings, batch
        self.projection = projection
        self.fetch_timeout_s, self.ack_wait_s, self.gap_wait_s = fetch_timeout_s, ack_wait_s, gap_wait_s
        self.max_ack_pending = max_ack_pending
        self.ingested = 0  # events appended to the log
        self.duplicates = 0  # events the log already had (re-sent or redelivered)
        self.malformed = 0  # messages terminated
        self.gaps = 0  # times a line went on without events that never arrived
        self.state = "stopped"  # starting, running, reconnecting, stopped
        self._held: dict[str, dict[int, _Item]] = {}
        self._gap_since: dict[str, float] = {}
        self._skipped: dict[str, set[int]] = {}  # sequences terminated as invalid: not waited for
        self._progress_at = 0.0
        self._js: JetStreamContext | None = None
        self._leases: dict[str, Lease] = {}  # line -> the latest lease its edge put
        self._watch: asyncio.Task[None] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> int:
        """Events waiting for an earlier event of their line."""
        return sum(len(h) for h in self._held.values())

    def lease(self, line: str) -> Lease | None:
        """The latest connectivity lease of ``line``'s edge; None when none came (yet)."""
        return self._leases.get(line)

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self.state = "starting"
            self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="nats-hub", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Finish the batch at hand (stored and acked), then close the connection."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # loop ---------------------------------------------------------------------------------------
    async def _main(self) -> None:
        nc: Client | None = None
        sub: JetStreamContext.PullSubscription | None = None
        attempt = 0
        try:
            while not self._stopping.is_set():
                try:
                    if nc is None or nc.is_closed:
                        nc, sub = await connect(self.settings, f"twinspect-hub-{self.settings.durable}"), None
                    if sub is None:
                        self._js = nc.jetstream()
                        sub = await self._subscribe(self._js)
                        await self._watch_leases(self._js)
                    await self._step(sub)
                    self.state = "running" if nc.is_connected else "reconnecting"
                    attempt = 0
                except Exception as error:  # server away, stream or consumer gone: re-subscribe after a pause
                    attempt += 1
                    self.state = "reconnecting"
                    delay = min(5.0, 0.2 * 2 ** min(attempt, 8))
                    log.warning("hub: %s: %s; retrying in %.1f s", type(error).__name__, error, delay)
                    if sub is not None:
                        with contextlib.suppress(Exception):
                            await sub.unsubscribe()
                        sub = None
                    await self._pause(delay)
        finally:
            if self._watch is not None:
                self._watch.cancel()
            if nc is not None and not nc.is_closed:
                with contextlib.suppress(Exception):
                    await nc.flush(5)  # the last acks reach the server (a drain would wait on the pull queue)
                with contextlib.suppress(Exception):
                    await nc.close()
            self.state = "stopped"

    async def _subscribe(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        await ensure_stream(js, self.settings)
        config = ConsumerConfig(
            durable_name=self.settings.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait_s,
            max_ack_pending=self.max_ack_pending,
        )
        sub = await js.pull_subscribe(
            f"{self.settings.subject_prefix}.>",
            durable=self.settings.durable,
            stream=self.settings.stream,
            config=config,
        )
        log.info("hub: consuming stream %s as %s", self.settings.stream, self.settings.durable)
        return sub

    async def _watch_leases(self, js: JetStreamContext) -> None:
        """(Re)start the task that keeps ``lease(line)`` up to date from the leases bucket."""
        if self._watch is not None:
            self._watch.cancel()
        watcher = await (await leases_bucket(js, self.settings)).watchall()

        async def follow() -> None:
            async for entry in watcher:
                if entry is None or entry.key is None:  # the marker after the initial values
                    continue
                if entry.operation is not None or not entry.value:  # deleted or purged
                    self._leases.pop(entry.key, None)
                    continue
                try:
                    self._leases[entry.key] = Lease.from_bytes(entry.value)
                except ValueError as error:
                    log.warning("hub: lease of %s: %s; ignored", entry.key, error)

        self._watch = asyncio.get_running_loop().create_task(follow(), name="hub-leases")

    async def _pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stopping.is_set() and time.monotonic() < end:
            await asyncio.sleep(min(0.1, end - time.monotonic()))

    async def _step(self, sub: JetStreamContext.PullSubscription) -> None:
        try:
            msgs = await sub.fetch(self.batch, timeout=self.fetch_timeout_s)
        except TimeoutError:  # nats.errors.TimeoutError is one: nothing came
            msgs = []
        last = self.log.lines()
        known: list[_Item] = []
        for msg in msgs:
            item = await self._parse(msg, last)
            if item is None:
                continue
            held = self._held.setdefault(item.event.line_id, {})
            before = held.get(item.event.sequence)
            if item.event.sequence <= last.get(item.event.line_id, 0):
                known.append(item)  # stored before: projected again (idempotent) in case a crash came between
            elif before is not None and _stream_seq(before) != _stream_seq(item):
                known.append(item)  # another copy of a held event: the held message stays unacked until stored
            else:
                held[item.event.sequence] = item  # new, or a redelivery of a held message (ack its newest copy)
        if not await self._release(last):
            return  # stopping while the database is away: nothing acked, all is delivered again
        if known and not await self._project([it.event for it in known], [it.msg for it in known]):
            return
        self.duplicates += len(known)
        for item in known:
            await item.msg.ack()
        await self._keep_held()
        await self._fetch_evidence()

    async def _parse(self, msg: Msg, last: dict[str, int]) -> _Item | None:
        """The message's event, or None when it is malformed (then terminated)."""
        event: Event | None = None
        try:
            event = Event.from_body(msg.data)
            check_event(event)
            return _Item(event, msg)
        except SyncError as error:
            self.malformed += 1
            seq = msg.metadata.sequence.stream
            log.error("hub: message %d on %s terminated: %s", seq, msg.subject, error)
            if event is not None and event.sequence > last.get(event.line_id, 0):
                self._skipped.setdefault(event.line_id, set()).add(event.sequence)
            await msg.term()
            return None

    async def _release(self, last: dict[str, int]) -> bool:
        """Store every held event that continues its line, ack them; False if stopped before storing."""
        runs: list[list[_Item]] = []
        now = time.monotonic()
        for line, held in self._held.items():
            nxt, skipped, run = last.get(line, 0) + 1, self._skipped.get(line, set()), []
            while nxt in held or nxt in skipped:
                if nxt in held:
                    run.append(held.pop(nxt))
                skipped.discard(nxt)
                nxt += 1
            if not held:
                self._gap_since.pop(line, None)
            elif now - self._gap_since.setdefault(line, now) >= self.gap_wait_s:
                log.warning(
                    "hub: line %s: events from sequence %d never arrived in %.0f s; going on without them",
                    line,
                    nxt,
                    self.gap_wait_s,
                )
                self.gaps += 1
                run.extend(held.pop(seq) for seq in sorted(held))
                self._gap_since.pop(line, None)
            if run:
                runs.append(run)
        items = list(heapq.merge(*runs, key=_stream_seq))  # stream order across lines, sequence order in each
        if not items:
            return True
        fresh = await self._ingest([it.event for it in items], [it.msg for it in items])
        if fresh is None or not await self._project([it.event for it in items], [it.msg for it in items]):
            return False
        self.ingested += len(fresh)
        self.duplicates += len(items) - len(fresh)
        for item in items:
            await item.msg.ack()
        return True

    async def _ingest(self, events: list[Event], msgs: Sequence[Msg]) -> list[Event] | None:
        """``log.ingest`` in a worker thread, retried while the database is away (None: stopping)."""
        return await self._retrying(lambda: asyncio.to_thread(self.log.ingest, events), "storing", events, msgs)

    async def _project(self, events: list[Event], msgs: Sequence[Msg]) -> bool:
        """``projection.apply``, retried while its database is away; False: stopping before it was done.

        Any other failure is logged and the events go on without their rows: it never stalls the hub.
        """
        if self.projection is None:
            return True
        projection = self.projection

        async def apply() -> bool:
            try:
                await projection.apply(events)
            except StoreUnavailableError:
                raise
            except Exception:
                log.exception("hub: inspections of %d events not stored", len(events))
            return True

        return await self._retrying(apply, "storing inspections of", events, msgs) is not None

    async def _retrying(
        self, work: Callable[[], Awaitable[T]], what: str, events: list[Event], msgs: Sequence[Msg]
    ) -> T | None:
        attempt = 0
        while True:
            try:
                return await work()
            except Exception as error:
                if self._stopping.is_set():
                    return None
                attempt += 1
                delay = min(5.0, 0.2 * 2 ** min(attempt, 8))
                log.warning("hub: %s %d events failed: %s; retrying in %.1f s", what, len(events), error, delay)
                for msg in msgs:  # keep JetStream from redelivering them meanwhile
                    with contextlib.suppress(Exception):
                        await msg.in_progress()
                await self._pause(delay)

    async def _fetch_evidence(self) -> None:
        if self.projection is None or self._js is None:
            return
        try:
            await self.projection.fetch_due(self._js)
        except Exception:  # never stops the stream; the queue is tried again after the next step
            log.exception("hub: fetching evidence failed")

    async def _keep_held(self) -> None:
        now = time.monotonic()
        if now - self._progress_at < self.ack_wait_s / 3:
            return
        self._progress_at = now
        for held in self._held.values():
            for item in held.values():
                with contextlib.suppress(Exception):
                    await item.msg.in_progress()
