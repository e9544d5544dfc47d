"""Forward the event log to a broker, at least once, from a cursor kept in the database.

A ``Forwarder`` reads the log after its cursor, hands batches to ``send`` (which returns
how many events, from the start of the batch, the broker confirmed), and stores the new
cursor. When the broker is away nothing advances: on reconnect it sends everything the
broker missed, from the log. Duplicates after a crash between "confirmed" and "cursor
stored" are possible (at least once); consumers drop them by event id (NATS does so by
``Nats-Msg-Id``, MQTT consumers by the CloudEvents ``id``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

from sync.errors import OffsetExpired
from sync.events import Event
from sync.log import EventLog

log = logging.getLogger(__name__)


class Forwarder(ABC):
    """Base of the MQTT and NATS forwarders; see the module docstring."""

    def __init__(self, event_log: EventLog, name: str, *, batch: int = 500, retry_max_s: float = 5.0) -> None:
        self.log, self.name, self.batch, self.retry_max_s = event_log, name, batch, retry_max_s
        self.forwarded = 0  # events confirmed by the broker since start
        self.cursor = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # to implement -------------------------------------------------------------------------------
    @abstractmethod
    def connect(self) -> None:
        """Open the broker connection (may raise; retried with backoff)."""

    @abstractmethod
    def connected(self) -> bool: ...

    @abstractmethod
    def send(self, batch: Sequence[Event]) -> int:
        """Publish ``batch`` in order; return how many from its start the broker confirmed."""

    @abstractmethod
    def close(self) -> None:
        """Close the broker connection (after the loop stopped)."""

    def after_step(self) -> None:
        """Called after every loop step, busy or idle, while connected (e.g. publish retained state)."""
        return None

    # loop ---------------------------------------------------------------------------------------
    @property
    def lag(self) -> int:
        """Events in the log the broker has not confirmed yet."""
        return max(0, self.log.head - self.cursor)

    def start(self) -> None:
        self._stop.clear()
        self.cursor = self.log.cursor(self.name)
        self._thread = threading.Thread(target=self._run, name=f"forward-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.close()

    def drain(self, timeout: float) -> bool:
        """Wait until the broker confirmed everything committed so far (for tests and shutdown)."""
        target = self.log.head
        done = threading.Event()
        while not done.wait(0.05):
            if self.cursor >= target:
                return True
            timeout -= 0.05
            if timeout <= 0:
                return False
        return True

    def _backoff(self, attempt: int) -> float:
        return min(self.retry_max_s, 0.2 * 2 ** min(attempt, 8)) * (0.5 + random.random() / 2)

    def _run(self) -> None:
        attempt, failing_since = 0, 0.0
        while not self._stop.is_set():
            try:
                if not self.connected():
                    self.connect()
                sent = self._step()
                self.after_step()
                if attempt:
                    log.info(
                        "%s: back after %.1f s; lag %d events", self.name, time.monotonic() - failing_since, self.lag
                    )
                attempt = 0
                if not sent:
                    self.log.wait(self.cursor, 0.5)
            except Exception as error:  # broker away or refused: keep the cursor, retry with backoff
                attempt += 1
                delay = self._backoff(attempt)
                if attempt == 1:
                    failing_since = time.monotonic()
                    log.warning("%s: %s; retrying with backoff (lag %d events)", self.name, error, self.lag)
                else:
                    log.debug("%s: %s; retrying in %.1f s (lag %d events)", self.name, error, delay, self.lag)
                self._stop.wait(delay)

    def _step(self) -> int:
        try:
            batch = self.log.read(self.cursor, self.batch)
        except OffsetExpired as error:  # retention dropped events the broker never got: say so, go on
            log.error("%s: %s; events before %d are lost for this broker", self.name, error, error.oldest)
            self.cursor = error.oldest - 1
            return 1
        if not batch:
            return 0
        confirmed = self.send(batch)
        if confirmed:
            self.cursor = batch[confirmed - 1].offset
            self.forwarded += confirmed
            self.log.set_cursor(self.name, self.cursor)
        if confirmed < len(batch):
            raise ConnectionError(f"broker confirmed {confirmed} of {len(batch)} events")
        return confirmed
