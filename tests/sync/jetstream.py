"""Helpers of the NATS tests: look at and write to a JetStream stream, a private nats-server, an edge process.

The edge process (``python -m tests.sync.jetstream DB_PATH LINE PARTS BATCH NATS_SETTINGS_JSON``)
opens its own SQLite event log, runs a NatsForwarder on it, appends the story of PARTS parts of
LINE in batches of BATCH events with small sleeps, waits until JetStream confirmed everything,
stops, and prints one JSON line: {"head": ..., "forwarded": ..., "drained": ...}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from sync.config import NatsSettings
from sync.nats import ensure_stream

T = TypeVar("T")


@dataclass(frozen=True)
class Stored:
    """One message as the stream holds it."""

    subject: str
    msg_id: str | None
    data: bytes


def settings_for(url: str) -> NatsSettings:
    """Settings with a stream, subject prefix and durable of their own."""
    tag = uuid.uuid4().hex[:12]
    return NatsSettings(
        enabled=True,
        url=url,
        stream=f"TEST_{tag}",
        subject_prefix=f"test-{tag}",
        durable=f"hub-{tag}",
        duplicate_window_s=120,
        leases_bucket=f"LEASES_{tag}",
    )


def with_client(settings: NatsSettings, work: Callable[[Client], Awaitable[T]]) -> T:
    """Run ``work(connection)`` on a fresh connection (closed after)."""

    async def run() -> T:
        nc = await nats.connect(settings.url)
        try:
            return await work(nc)
        finally:
            await nc.close()

    return asyncio.run(run())


def delete_stream(settings: NatsSettings) -> None:
    async def work(nc: Client) -> None:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(settings.stream)
        with contextlib.suppress(NotFoundError):  # the leases bucket the edges and the hub made
            await nc.jetstream().delete_key_value(settings.leases_bucket)

    with_client(settings, work)


def create_stream(settings: NatsSettings) -> None:
    """The stream as edges and hubs make it, before either runs (twice: the second finds it right)."""

    async def work(nc: Client) -> None:
        await ensure_stream(nc.jetstream(), settings)
        await ensure_stream(nc.jetstream(), settings)

    with_client(settings, work)


def stream_contents(settings: NatsSettings) -> list[Stored]:
    """Every message of the stream, in stream order, read by an ephemeral JetStream consumer."""

    async def work(nc: Client) -> list[Stored]:
        js = nc.jetstream()
        total = (await js.stream_info(settings.stream)).state.messages
        sub = await js.pull_subscribe(f"{settings.subject_prefix}.>", stream=settings.stream)
        msgs: list[Msg] = []
        while len(msgs) < total:
            msgs += await sub.fetch(total - len(msgs), timeout=5)
        return [Stored(m.subject, (m.headers or {}).get("Nats-Msg-Id"), m.data) for m in msgs]

    return with_client(settings, work)


def publish(settings: NatsSettings, messages: list[tuple[str, bytes, str]]) -> list[bool]:
    """Publish (subject, payload, Nats-Msg-Id) messages in order; whether JetStream called each a duplicate."""

    async def work(nc: Client) -> list[bool]:
        js = nc.jetstream()
        return [
            bool((await js.publish(s, data, headers={"Nats-Msg-Id": msg_id})).duplicate) for s, data, msg_id in messages
        ]

    return with_client(settings, work)


def consumer_info(settings: NatsSettings) -> Any:
    async def work(nc: Client) -> Any:
        return await nc.jetstream().consumer_info(settings.stream, settings.durable)

    return with_client(settings, work)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class PrivateServer:
    """A nats-server with JetStream on ``port``, its store in ``store``; start it again after a stop."""

    def __init__(self, port: int, store: Path) -> None:
        self.port, self.store = port, store
        self.url = f"nats://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not listening(self.port):
            assert time.monotonic() < deadline and self.proc.poll() is None, "nats-server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM: a clean stop (a killed server may lose the last messages it acked, which is not our bug)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def edge_main(argv: list[str]) -> int:
    from inspection.store import open_database
    from sync.log import EventLog
    from sync.nats import NatsForwarder
    from tests.sync.conftest import story

    path, line, parts, batch, settings_json = argv
    settings = NatsSettings.model_validate_json(settings_json)
    db = open_database(f"sqlite:///{path}")
    event_log = EventLog(db)
    forwarder = NatsForwarder(event_log, settings, f"edge-{line}", batch=50)
    forwarder.start()
    drafts = story(int(parts), line)
    for start in range(0, len(drafts), int(batch)):
        event_log.append(drafts[start : start + int(batch)])
        time.sleep(0.01)
    drained = forwarder.drain(30.0)
    forwarder.stop()
    print(json.dumps({"head": event_log.head, "forwarded": forwarder.forwarded, "drained": drained}), flush=True)
    db.dispose()
    return 0 if drained else 1


if __name__ == "__main__":
    sys.exit(edge_main(sys.argv[1:]))
