"""A bounded hand-over from the engine's and the event log's threads to an output's own thread.

``Outlet.offer(item)`` never blocks: when the queue is full the item is dropped and counted
(``dropped``), so a dead PLC, a hanging webhook or a stalled OPC UA client never slows the line.
The output's thread takes items with ``take`` and counts what it failed to deliver (``failed``).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from sync.events import Event

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class OutletFigures:
    """What an output did since start."""

    name: str
    offered: int
    dropped: int  # the queue was full
    delivered: int
    failed: int  # the output refused or timed out
    queued: int


class Outlet(Generic[T]):
    """See the module docstring."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self._queue: queue.Queue[T] = queue.Queue(maxsize=size)
        self._lock = threading.Lock()
        self.offered = self.dropped = self.delivered = self.failed = 0

    def offer(self, item: T) -> bool:
        """Queue ``item`` for the output (False: full, dropped and counted). Never blocks."""
        with self._lock:
            self.offered += 1
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            with self._lock:
                self.dropped += 1
            return False

    def take(self, timeout: float) -> T | None:
        """The next item, or None after ``timeout`` seconds without one."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def take_all(self, first: T) -> list[T]:
        """``first`` and everything queued behind it (one batch for the output)."""
        out = [first]
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def done(self, ok: bool, n: int = 1) -> None:
        with self._lock:
            if ok:
                self.delivered += n
            else:
                self.failed += n

    def figures(self) -> OutletFigures:
        with self._lock:
            return OutletFigures(
                self.name, self.offered, self.dropped, self.delivered, self.failed, self._queue.qsize()
            )


class Pump(Generic[T]):
    """A thread that hands each item of an outlet to ``handle``; a handler that raises is counted and logged.

    ``idle(now)`` runs at least every ``tick_s`` (heartbeats, timers), busy or not.
    """

    def __init__(
        self,
        outlet: Outlet[T],
        handle: Callable[[list[T]], None],
        *,
        idle: Callable[[], None] | None = None,
        tick_s: float = 0.2,
    ) -> None:
        self.outlet, self.handle, self.idle, self.tick_s = outlet, handle, idle, tick_s
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error = 0.0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"floor-{self.outlet.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            item = self.outlet.take(min(self.tick_s, max(0.0, next_tick - time.monotonic())))
            if item is not None:
                self._guard(functools.partial(self.handle, self.outlet.take_all(item)))
            if self.idle is not None and time.monotonic() >= next_tick:
                self._guard(self.idle)
                next_tick = time.monotonic() + self.tick_s

    def _guard(self, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception:
            self.errors += 1
            now = time.monotonic()
            if now - self._last_error > 10.0:  # at most one trace every 10 s per output
                self._last_error = now
                log.exception("%s failed (%d errors so far); going on", self.outlet.name, self.errors)


class LogTap:
    """An event-log listener that offers each committed event of the wanted types to its outlets.

    It runs in the log's committing thread, so it only offers (never blocks): a full outlet drops.
    """

    def __init__(self) -> None:
        self._routes: list[tuple[frozenset[str] | None, Outlet[Event]]] = []

    def route(self, outlet: Outlet[Event], types: frozenset[str] | None = None) -> None:
        self._routes = [*self._routes, (types, outlet)]

    def __call__(self, batch: Sequence[Event]) -> None:
        for types, outlet in self._routes:
            for event in batch:
                if types is None or event.type in types:
                    outlet.offer(event)
