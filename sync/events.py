"""Events as CloudEvents 1.0 JSON, with the per-line ``sequence`` and ``lineid`` extensions.

A producer makes a ``Draft`` (type, source, subject, data; its UUID and time are fixed
at creation, so a re-published draft keeps its identity). The event log turns drafts
into ``Event``s: it gives each the next ``sequence`` of its line and an ``offset`` in the
log, and freezes the CloudEvents JSON text (``body``) that every feed and broker sends
verbatim. That text is strict JSON (no NaN or Infinity, no lone surrogate) and at most
``MAX_EVENT_BYTES``: a draft that would break either is refused when it is made
(``InvalidEvent`` naming its type and size), so the log never holds what a strict client
cannot parse or a replaying feed cannot carry.

    {"specversion": "1.0", "id": "9b1d...", "source": "/twinspect/edge-1/cam1",
     "type": "io.twinspect.part.inspected", "time": "2026-11-21T16:00:00.123Z",
     "subject": "lx3k-cam1-7-120", "datacontenttype": "application/json",
     "lineid": "line-1", "sequence": 42, "data": {...}}
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sync.errors import InvalidEvent, UnknownEventType

TYPE_PREFIX = "io.twinspect."
EVENT_TYPES: tuple[str, ...] = (
    "part.entered",
    "part.inspected",
    "part.uninspected",
    "part.exited",
    "line.started",
    "line.stopped",
    "camera.online",
    "camera.offline",
    "review.corrected",
    "model.activated",
    "model.registered",
    "model.shadow_started",
    "model.rolled_back",
    "model.alert",
    "twin.drift",
    "line.recipe_changed",
    "process.drift",
    "process.in_control",
    "reject.late",
)
SPEC_VERSION = "1.0"
LINE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
MAX_EVENT_BYTES = 64 * 1024  # one event's CloudEvents JSON text; larger ones are refused, never logged


def check_type(short_type: str) -> str:
    """``short_type`` (``part.inspected``) or its full name; returns the short one."""
    name = short_type.removeprefix(TYPE_PREFIX)
    if name not in EVENT_TYPES:
        raise UnknownEventType(f"unknown event type {short_type!r}; known: {', '.join(EVENT_TYPES)}")
    return name


def check_line_id(line_id: str) -> str:
    if not LINE_ID_RE.match(line_id):
        raise InvalidEvent(f"line id {line_id!r}: use 1-100 letters, digits, '-' or '_' (it is an MQTT/NATS token)")
    return line_id


def rfc3339(t: float | datetime | None = None) -> str:
    """UTC time as RFC 3339 with milliseconds and a Z (``None``: now)."""
    if t is None:
        dt = datetime.now(UTC)
    elif isinstance(t, datetime):
        dt = t.astimezone(UTC)
    else:
        dt = datetime.fromtimestamp(t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class _UuidPool(threading.local):
    """Random version-4 UUID strings from a per-thread pool of ``os.urandom`` bytes (one syscall per 256)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.buf, self.pos = b"", 0

    def next(self) -> str:
        if self.pos >= len(self.buf):
            self.buf, self.pos = os.urandom(16 * 256), 0
        raw = bytearray(self.buf[self.pos : self.pos + 16])
        self.pos += 16
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_uuids = _UuidPool()
os.register_at_fork(after_in_child=lambda: _uuids.reset())  # a child never repeats its parent's ids


def new_event_id() -> str:
    return _uuids.next()


def dumps(value: Any) -> str:
    """The canonical JSON text used for event bodies and twin documents (sorted keys, compact).

    Strict JSON: NaN and Infinity raise ValueError (``JSON.parse`` and every strict reader refuse them).
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def check_body(short_type: str, body: str) -> str:
    """``body`` if it is Unicode text within MAX_EVENT_BYTES (UTF-8); InvalidEvent naming the type and the size
    (or the lone surrogate) otherwise."""
    try:
        size = len(body) if body.isascii() else len(body.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidEvent(f"{short_type} event: a string holds a lone UTF-16 surrogate (not Unicode text)") from None
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent(
            f"{short_type} event of {size} bytes is over the limit of {MAX_EVENT_BYTES} bytes "
            "(every feed replays the log: bound what goes into an event)"
        )
    return body


@dataclass(frozen=True)
class Draft:
    """An event before the log has given it a sequence."""

    type: str  # short type, e.g. "part.inspected"
    line_id: str
    source: str  # URI reference of the producer, e.g. "/twinspect/edge-1/cam1"
    data: Mapping[str, Any]
    subject: str | None = None  # the part id for part.* events
    time: str = field(default_factory=rfc3339)
    id: str = field(default_factory=new_event_id)

    def __post_init__(self) -> None:
        """Refuse at once (InvalidEvent) what the log could not store: an unknown type, a bad line id, data that
        is not strict JSON (NaN, Infinity, an object JSON cannot hold) or an event over MAX_EVENT_BYTES."""
        object.__setattr__(self, "type", check_type(self.type))
        check_line_id(self.line_id)
        try:
            body = dumps(self.envelope(2**63 - 1))  # the longest sequence the log column holds
        except ValueError:
            raise InvalidEvent(f"{self.type} event: its data holds NaN or Infinity, which have no JSON form") from None
        except TypeError as error:
            raise InvalidEvent(f"{self.type} event: its data is not JSON ({error})") from None
        check_body(self.type, body)

    def envelope(self, sequence: int) -> dict[str, Any]:
        ce: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "type": TYPE_PREFIX + self.type,
            "time": self.time,
            "datacontenttype": "application/json",
            "lineid": self.line_id,
            "sequence": sequence,
            "data": dict(self.data),
        }
        if self.subject is not None:
            ce["subject"] = self.subject
        return ce


@dataclass(frozen=True)
class Event:
    """An event in the log: its CloudEvents JSON text plus the fields the log indexes."""

    offset: int  # position in this log (gap-free, from 1)
    sequence: int  # position in its line's stream (gap-free, from 1)
    line_id: str
    type: str  # short type
    id: str
    time: str
    body: str  # canonical CloudEvents JSON text
    parsed: dict[str, Any] | None = field(default=None, compare=False, repr=False)  # the body as a dict, if known

    @classmethod
    def from_draft(cls, draft: Draft, offset: int, sequence: int) -> Event:
        ce = draft.envelope(sequence)
        return cls(offset, sequence, draft.line_id, draft.type, draft.id, draft.time, dumps(ce), ce)

    @classmethod
    def from_body(cls, body: str | bytes, offset: int = 0) -> Event:
        """Parse a CloudEvents JSON text made by another twinspect log (an edge, for the hub)."""
        try:
            ce = json.loads(body)
            short = check_type(str(ce["type"]))
            line_id = check_line_id(str(ce["lineid"]))
            sequence = int(ce["sequence"])
            if ce.get("specversion") != SPEC_VERSION or sequence < 1:
                raise ValueError("specversion must be 1.0 and sequence >= 1")
            return cls(offset, sequence, line_id, short, str(ce["id"]), str(ce["time"]), check_body(short, dumps(ce)))
        except InvalidEvent:
            raise
        except (ValueError, KeyError, TypeError) as error:
            raise InvalidEvent(f"not a twinspect CloudEvent: {error}") from None

    def cloudevent(self) -> dict[str, Any]:
        """The body as a dict (shared: do not change it)."""
        if self.parsed is not None:
            return self.parsed
        value: dict[str, Any] = json.loads(self.body)
        return value

    def with_offset(self) -> str:
        """The body with the log offset added as the ``offset`` extension (what the feeds send)."""
        return self.body[:-1] + f',"offset":{self.offset}}}'
