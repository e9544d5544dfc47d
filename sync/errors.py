"""Exception tree of the sync package (event log, twin, feeds, brokers).

Every error a client can cause carries a one-line reason; api/errors.py maps each class
to its HTTP status.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error raised by the sync package."""


class UnknownEventType(SyncError):
    """An event type that is not one of sync.events.EVENT_TYPES."""


class UnknownLine(SyncError):
    """A line id this service has no events or twin for."""


class BadOffset(SyncError):
    """An offset, revision or Last-Event-ID that is malformed or past the end of the log."""


class OffsetExpired(SyncError):
    """An offset or revision older than what retention keeps."""

    def __init__(self, message: str, oldest: int) -> None:
        super().__init__(message)
        self.oldest = oldest


class InvalidEvent(SyncError):
    """An event (or a drift report) that does not fit its schema."""


class BrokerError(SyncError):
    """A broker (MQTT, NATS) refused or could not be reached at start."""
