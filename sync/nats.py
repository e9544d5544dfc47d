"""Forward the event log to NATS JetStream (edge side), and the stream setup the hub shares.

Every event goes to the subject ``<prefix>.<line>.<type>`` (``twinspect.line-1.part.inspected``)
with its CloudEvents JSON text as payload and its id as ``Nats-Msg-Id``, so JetStream drops a
re-published event inside the stream's duplicate window. Publishes of a batch are written in
log order on one connection (so the stream holds each line in sequence order) and their
PubAcks are awaited together; ``send`` reports the confirmed prefix of the batch.

Evidence: with an ``evidence_dir`` (the edge's EvidenceStore), the JPEG a ``part.inspected``
event names by ``evidence_sha256`` is put into the JetStream object store bucket
``evidence_bucket`` under that sha (unless already there) before the event is published, so
the hub finds it when the event arrives; with a ``goldens_dir`` too, so is the golden image a
golden-reference inspection names by ``golden_sha256``, as ``golden-<sha256>``. A file missing
on disk is logged and skipped: the feed never waits for it.

Connectivity: every ``lease_s / 3`` the forwarder puts the lease of each of its lines (see
``sync.connectivity``) into the key-value bucket ``leases_bucket`` (key: the line id), and one
that ends now when it closes; the hub watches the bucket and shows each line's lease in its twin.

nats-py is asyncio and the ``Forwarder`` is a thread: the forwarder owns a private event loop
in a helper thread and calls into it synchronously.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, TypeVar

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StreamConfig
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from inspection.reference.goldens import GoldenFiles
from inspection.reference.recipes import GoldenNotFound, RecipeError
from inspection.store import EvidenceError, EvidenceNotFoundError, EvidenceStore
from sync.config import NatsSettings
from sync.connectivity import Lease, Renewal
from sync.errors import BrokerError
from sync.events import Event
from sync.forwarder import Forwarder
from sync.log import EventLog

log = logging.getLogger(__name__)

T = TypeVar("T")
MSG_ID = "Nats-Msg-Id"
CHUNK = 256  # publishes in flight at once


def subject(settings: NatsSettings, event: Event) -> str:
    """``<prefix>.<line>.<type>``; line ids and types are valid subject tokens (sync.events checks)."""
    return f"{settings.subject_prefix}.{event.line_id}.{event.type}"


def stream_subjects(settings: NatsSettings) -> list[str]:
    return [f"{settings.subject_prefix}.>"]


async def ensure_stream(js: JetStreamContext, settings: NatsSettings) -> None:
    """Create the stream, or make an existing one take our subjects and duplicate window.

    An existing stream keeps every other setting (limits, replicas) an operator gave it.
    """
    for _ in range(3):  # another edge (or the hub) may create it at the same moment
        try:
            info = await js.stream_info(settings.stream)
        except NotFoundError:
            try:
                await js.add_stream(
                    name=settings.stream,
                    subjects=stream_subjects(settings),
                    duplicate_window=settings.duplicate_window_s,
                )
                log.info("nats: created stream %s on %s", settings.stream, stream_subjects(settings)[0])
                return
            except BadRequestError as error:  # created meanwhile (10058 "already in use"): look again
                log.info("nats: stream %s: %s", settings.stream, error.description)
                continue
        config: StreamConfig = info.config
        subjects = list(config.subjects or [])
        wanted = stream_subjects(settings)[0]
        if wanted in subjects and abs((config.duplicate_window or 0) - settings.duplicate_window_s) < 1e-6:
            return
        if wanted not in subjects:
            subjects.append(wanted)
        await js.update_stream(config.evolve(subjects=subjects, duplicate_window=settings.duplicate_window_s))
        log.info(
            "nats: updated stream %s (subjects %s, duplicate window %.0f s)",
            settings.stream,
            subjects,
            settings.duplicate_window_s,
        )
        return
    raise BrokerError(f"nats: stream {settings.stream}: could not create or read it")


async def evidence_bucket(js: JetStreamContext, settings: NatsSettings, create: bool = True) -> ObjectStore:
    """The evidence object store; created when missing and ``create`` (else ``BucketNotFoundError``)."""
    try:
        return await js.object_store(settings.evidence_bucket)
    except BucketNotFoundError:
        if not create:
            raise
    try:
        store = await js.create_object_store(settings.evidence_bucket)
        log.info("nats: created object store %s", settings.evidence_bucket)
        return store
    except BadRequestError:  # created meanwhile by another edge
        return await js.object_store(settings.evidence_bucket)


async def leases_bucket(js: JetStreamContext, settings: NatsSettings) -> KeyValue:
    """The key-value bucket of the lines' connectivity leases (created when missing; one value per line)."""
    try:
        return await js.key_value(settings.leases_bucket)
    except BucketNotFoundError:
        pass
    try:
        kv = await js.create_key_value(KeyValueConfig(bucket=settings.leases_bucket, history=1))
        log.info("nats: created key-value bucket %s", settings.leases_bucket)
        return kv
    except BadRequestError:  # created meanwhile by another edge or the hub
        return await js.key_value(settings.leases_bucket)


GOLDEN_OBJECT = "golden-"  # bucket objects of golden images: "golden-<sha256>"; evidence JPEGs: "<sha256>"


def _named_sha(event: Event, field: str) -> str | None:
    if event.type != "part.inspected":
        return None
    sha = (event.cloudevent().get("data") or {}).get(field)
    return sha if isinstance(sha, str) else None


def evidence_sha(event: Event) -> str | None:
    """The evidence JPEG a part.inspected event names, if any."""
    return _named_sha(event, "evidence_sha256")


def golden_sha(event: Event) -> str | None:
    """The golden image a golden-reference part.inspected event names, if any."""
    return _named_sha(event, "golden_sha256")


def _golden_bytes(goldens: GoldenFiles, sha256: str) -> bytes:
    return goldens.read(sha256)[0]


def golden_object(sha256: str) -> str:
    """The bucket object name of a golden image."""
    return GOLDEN_OBJECT + sha256


async def connect(settings: NatsSettings, name: str, timeout_s: int = 2) -> Client:
    """A connection that reconnects by itself forever once it has connected (raises if it cannot at first)."""

    async def on_error(error: Exception) -> None:  # while reconnecting: one refused attempt every 0.5 s
        log.log(logging.DEBUG if isinstance(error, OSError) else logging.WARNING, "nats %s: %s", name, error)

    async def on_disconnected() -> None:
        if not (nc.is_closed or nc.is_draining):
            log.warning("nats %s: disconnected from %s; reconnecting", name, settings.url)

    async def on_reconnected() -> None:
        log.info("nats %s: reconnected to %s", name, settings.url)

    nc = Client()
    try:
        # nats-py applies max_reconnect_attempts to the first connect too (-1 would retry it forever):
        # try twice there, then never give up once connected.
        await nc.connect(
            settings.url,
            name=name,
            connect_timeout=timeout_s,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.5,  # type: ignore[arg-type]  # typed int, used as seconds
            allow_reconnect=True,
            error_cb=on_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
    except Exception as error:  # NoServersError, OSError, TimeoutError
        raise BrokerError(f"nats: cannot connect to {settings.url}: {type(error).__name__}: {error}") from None
    nc.options["max_reconnect_attempts"] = -1
    return nc


class LoopThread:
    """An asyncio loop in a daemon thread; ``call`` runs a coroutine on it and waits for the result."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise TimeoutError(f"no answer in {timeout:.0f} s") from None

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()


class NatsForwarder(Forwarder):
    """Publishes the event log to a JetStream stream, at least once, deduplicated by event id."""

    def __init__(
        self,
        event_log: EventLog,
        settings: NatsSettings,
        edge_id: str,
        *,
        batch: int = 500,
        ack_timeout_s: float = 5.0,
        evidence_dir: Path | None = None,
        goldens_dir: Path | None = None,
        lease_s: float = 30.0,
    ) -> None:
        super().__init__(event_log, f"nats-{settings.stream}", batch=batch)
        self.settings, self.edge_id, self.ack_timeout_s = settings, edge_id, ack_timeout_s
        self.lease_s = lease_s
        self._renewal = Renewal(lease_s)
        self._ready_since = time.time()
        self._leases: KeyValue | None = None
        self.duplicates = 0  # events JetStream already had (PubAck.duplicate): re-sends after a restart
        self.evidence = EvidenceStore(evidence_dir) if evidence_dir is not None else None
        self.evidence_put = 0  # JPEGs put into the bucket
        self.evidence_missing = 0  # JPEGs named by an event but not on disk (skipped)
        # golden images go with the evidence (the hub shows QA each board beside its golden)
        self.goldens = GoldenFiles(goldens_dir) if goldens_dir is not None and evidence_dir is not None else None
        self.goldens_put = 0  # golden images put into the bucket
        self.goldens_missing = 0  # golden images named by an event but not in the goldens folder (skipped)
        self._uploaded: OrderedDict[str, None] = OrderedDict()  # shas known to be in the bucket (bounded)
        self._loop: LoopThread | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._bucket: ObjectStore | None = None

    def connect(self) -> None:
        if self._loop is None:
            self._loop = LoopThread(f"nats-{self.edge_id}")
        if self._nc is not None:  # closed for good: drop it and start over
            self._close_connection()
        self._nc = self._loop.call(connect(self.settings, f"twinspect-edge-{self.edge_id}"), 10.0)
        self._js = self._nc.jetstream()
        try:
            self._loop.call(ensure_stream(self._js, self.settings), 10.0)
            if self.evidence is not None:
                self._bucket = self._loop.call(evidence_bucket(self._js, self.settings), 10.0)
            self._leases = self._loop.call(leases_bucket(self._js, self.settings), 10.0)
        except Exception:
            self._close_connection()
            raise
        log.info("nats: edge %s publishes to stream %s on %s", self.edge_id, self.settings.stream, self.settings.url)

    def connected(self) -> bool:
        # While nats-py reconnects, the connection is not closed: sends fail and are retried on it.
        return self._nc is not None and not self._nc.is_closed

    def after_step(self) -> None:
        if self._renewal.due():
            self._put_leases(ending=False)

    def _put_leases(self, ending: bool) -> None:
        """Put the lease of every line of the log (renewed, or ``ending`` now); raises when NATS is away."""
        if self._loop is None or self._leases is None:
            return
        leases = [
            Lease.ended(line, self.edge_id, self._ready_since)
            if ending
            else Lease.renewed(line, self.edge_id, self._ready_since, self.lease_s)
            for line in self.log.lines()
        ]
        self._loop.call(self._put_all(self._leases, leases), self.ack_timeout_s * 2)
        self._renewal.done()

    @staticmethod
    async def _put_all(kv: KeyValue, leases: Sequence[Lease]) -> None:
        for lease in leases:
            await kv.put(lease.line_id, lease.to_bytes())

    def send(self, batch: Sequence[Event]) -> int:
        if self._loop is None or self._js is None:
            raise ConnectionError("nats: not connected")
        return self._loop.call(self._send(self._js, batch), self.ack_timeout_s * (len(batch) // CHUNK + 2))

    async def _send(self, js: JetStreamContext, batch: Sequence[Event]) -> int:
        confirmed = 0
        for start in range(0, len(batch), CHUNK):
            chunk = batch[start : start + CHUNK]
            try:
                await self._put_evidence(chunk)
            except Exception as put_error:  # bucket away: publish nothing of this chunk, retried with backoff
                log.warning("nats: putting evidence failed: %s: %s", type(put_error).__name__, put_error)
                return confirmed
            futures: list[asyncio.Future[Any]] = []
            for event in chunk:  # written in order on one connection: the stream keeps log order
                futures.append(
                    await js.publish_async(
                        subject(self.settings, event),
                        event.body.encode(),
                        stream=self.settings.stream,
                        headers={MSG_ID: event.id},
                    )
                )
            await asyncio.wait(futures, timeout=self.ack_timeout_s)
            for future in futures:
                if not future.done():
                    future.cancel()
            for n, future in enumerate(futures):
                error = None if future.cancelled() else future.exception()
                if future.cancelled() or error is not None:
                    log.warning("nats: event %s not confirmed: %s", chunk[n].id, error or "no PubAck in time")
                    return confirmed
                if future.result().duplicate:
                    self.duplicates += 1
                confirmed += 1
        return confirmed

    async def _put_evidence(self, chunk: Sequence[Event]) -> None:
        """Put the JPEG (and the golden image) of each part.inspected event of ``chunk`` into the bucket
        unless it is there."""
        if self.evidence is None or self._bucket is None:
            return
        evidence, goldens = self.evidence, self.goldens
        for event in chunk:
            sha = evidence_sha(event)
            if sha is not None and await self._put_object(event, sha, functools.partial(evidence.get, sha)):
                self.evidence_put += 1
            elif sha is not None and sha not in self._uploaded:
                self.evidence_missing += 1
            golden = golden_sha(event) if goldens is not None else None
            if golden is None or goldens is None:
                continue
            name = golden_object(golden)
            if await self._put_object(event, name, functools.partial(_golden_bytes, goldens, golden)):
                self.goldens_put += 1
            elif name not in self._uploaded:
                self.goldens_missing += 1

    async def _put_object(self, event: Event, name: str, read: Callable[[], bytes]) -> bool:
        """Put the object ``name`` (its bytes from ``read``) unless the bucket has it; True when it was put.

        A file that is not there, or is corrupt, is logged and skipped: the event goes without it."""
        assert self._bucket is not None
        if name in self._uploaded:
            return False
        try:
            await self._bucket.get_info(name)
        except ObjectNotFoundError:
            try:
                data = await asyncio.to_thread(read)
            except (EvidenceNotFoundError, GoldenNotFound):
                log.warning("nats: event %s names %s, not on disk; sent without it", event.id, name)
                return False
            except (EvidenceError, RecipeError) as error:  # corrupt or unreadable: the hub could not use it either
                log.error("nats: event %s: %s; sent without it", event.id, error)
                return False
            await self._bucket.put(name, data)
            self._remember(name)
            return True
        self._remember(name)
        return False

    def _remember(self, name: str) -> None:
        self._uploaded[name] = None
        if len(self._uploaded) > 10_000:
            self._uploaded.popitem(last=False)

    def _close_connection(self) -> None:
        nc, self._nc, self._js, self._bucket, self._leases = self._nc, None, None, None, None
        if nc is not None and self._loop is not None and not nc.is_closed:
            try:
                self._loop.call(nc.drain(), 10.0)
            except Exception as error:
                log.warning("nats: draining the connection: %s; closing it", error)
                with contextlib.suppress(Exception):
                    self._loop.call(nc.close(), 5.0)

    def close(self) -> None:
        if self.connected():
            try:  # a clean stop: every line's lease ends now
                self._put_leases(ending=True)
            except Exception as error:
                log.warning("nats: ending the leases: %s: %s", type(error).__name__, error)
        self._close_connection()
        if self._loop is not None:
            self._loop.close()
            self._loop = None
