"""Is the edge that feeds a line up? A lease in the live twin, shaped like Eclipse Ditto's ConnectionStatus.

The twin document is a pure function of the line's events, and a crash writes no event: read
after a crash (kill -9, power cut, cut cable), the last document still says ``running``. So the
*live* twins carry one feature that is not derived from events::

    "connectivity": {"definition": ["org.eclipse.ditto:ConnectionStatus:1.0.0"],
                     "properties": {"status": {"readySince": T0, "readyUntil": T1},
                                    "edgeId": "edge-1"}}

The edge that feeds the line is up while ``now < readyUntil`` (Ditto's rule, the same one Hono's
time-til-disconnect uses). A running edge renews its lease every ``lease_s / 3`` with
``readyUntil = now + lease_s``; a clean stop writes ``readyUntil = `` the time of the stop. So a
crashed edge shows offline at most ``lease_s`` after it died, without anyone writing anything,
and a stopped one at once. Clocks: ``readyUntil`` is the edge's clock; a reader whose clock is
ahead by S seconds sees the edge offline S seconds early (keep hosts on NTP).

Where the feature appears:

- the retained twin on MQTT (``{prefix}/{line}/twin``), renewed by ``sync.mqtt.MqttForwarder``;
- the hub's ``GET /api/v1/twin/LINE``: each edge puts its leases in a NATS key-value bucket
  (``sync.nats.NatsForwarder``), the hub watches it (``sync.hub.Hub``);
- not in an edge's own API (if it answers, it is up) and not in ``?at=REVISION`` (history is
  events only), so a consumer that replays events still gets those documents byte for byte.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sync.events import dumps, rfc3339

DEFINITION = "org.eclipse.ditto:ConnectionStatus:1.0.0"
FEATURE = "connectivity"


@dataclass(frozen=True)
class Lease:
    """An edge's promise that it feeds ``line_id`` until ``ready_until`` (epoch seconds)."""

    line_id: str
    edge_id: str
    ready_since: float
    ready_until: float

    @classmethod
    def renewed(cls, line_id: str, edge_id: str, ready_since: float, lease_s: float) -> Lease:
        return cls(line_id, edge_id, ready_since, time.time() + lease_s)

    @classmethod
    def ended(cls, line_id: str, edge_id: str, ready_since: float) -> Lease:
        """The lease of a clean stop: it ends now."""
        return cls(line_id, edge_id, ready_since, time.time())

    def connected(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.ready_until

    def feature(self) -> dict[str, Any]:
        return {
            "definition": [DEFINITION],
            "properties": {
                "status": {"readySince": rfc3339(self.ready_since), "readyUntil": rfc3339(self.ready_until)},
                "edgeId": self.edge_id,
            },
        }

    def to_bytes(self) -> bytes:
        return dumps(asdict(self)).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Lease:
        """``ValueError`` when ``data`` is not a lease."""
        try:
            raw = json.loads(data)
            return cls(str(raw["line_id"]), str(raw["edge_id"]), float(raw["ready_since"]), float(raw["ready_until"]))
        except (KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"not a lease: {error}") from None


def with_lease(text: str, lease: Lease) -> str:
    """The twin document ``text`` with its ``connectivity`` feature set from ``lease``."""
    doc = json.loads(text)
    doc["features"][FEATURE] = lease.feature()
    return dumps(doc)


def ready_until(doc: dict[str, Any]) -> float | None:
    """The ``readyUntil`` of a twin document as epoch seconds; None when it carries no lease."""
    try:
        value = doc["features"][FEATURE]["properties"]["status"]["readyUntil"]
    except (KeyError, TypeError):
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class Renewal:
    """When a forwarder renews its leases: every ``lease_s / 3`` (so two renewals may be lost)."""

    def __init__(self, lease_s: float) -> None:
        self.lease_s = lease_s
        self._last = -1e18

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.lease_s / 3

    def done(self) -> None:
        self._last = time.monotonic()
