"""The sync side of a running twinspect: event log, twin, broker forwarders, retention.

sync = SyncService.open(db_engine, settings.sync)   # log + twins + forwarders per config
sync.start()            # writer thread, forwarders, retention timer
... engine events -> sync.log.publish(drafts) ...
sync.stop()             # commits what is queued, lets forwarders drain, stops
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from sync.config import SyncSettings
from sync.connectivity import Lease
from sync.forwarder import Forwarder
from sync.log import EventLog
from sync.retention import prune
from sync.twin import TwinStore

log = logging.getLogger(__name__)


def build_forwarders(
    event_log: EventLog,
    twins: TwinStore,
    settings: SyncSettings,
    evidence_dir: Path | None = None,
    goldens_dir: Path | None = None,
) -> list[Forwarder]:
    """The broker forwarders the config enables (imported only when enabled).

    ``evidence_dir``: the edge's evidence folder; NATS then also puts the JPEGs of its inspections
    into the evidence bucket for the hub, and with ``goldens_dir`` the golden images they were compared with.
    """
    out: list[Forwarder] = []
    if settings.mqtt.enabled:
        from sync.mqtt import MqttForwarder

        out.append(MqttForwarder(event_log, twins, settings.mqtt, settings.edge_id, lease_s=settings.lease_s))
    if settings.nats.enabled:
        from sync.nats import NatsForwarder

        out.append(
            NatsForwarder(
                event_log,
                settings.nats,
                settings.edge_id,
                evidence_dir=evidence_dir,
                goldens_dir=goldens_dir,
                lease_s=settings.lease_s,
            )
        )
    return out


class SyncService:
    """Owns the event log of one database, its twins, forwarders and retention."""

    def __init__(
        self, event_log: EventLog, twins: TwinStore, settings: SyncSettings, forwarders: list[Forwarder] | None = None
    ) -> None:
        self.log, self.twins, self.settings = event_log, twins, settings
        self.forwarders = forwarders or []
        # a hub sets this to Hub.lease: its twins then show each line's connectivity lease (sync.connectivity)
        self.leases: Callable[[str], Lease | None] | None = None
        self._stop = threading.Event()
        self._retention: threading.Thread | None = None

    @classmethod
    def open(
        cls,
        db: Engine,
        settings: SyncSettings,
        *,
        forwarders: bool = True,
        evidence_dir: Path | None = None,
        goldens_dir: Path | None = None,
    ) -> SyncService:
        event_log = EventLog(db)
        twins = TwinStore(event_log)
        fw = build_forwarders(event_log, twins, settings, evidence_dir, goldens_dir) if forwarders else []
        return cls(event_log, twins, settings, fw)

    def start(self) -> None:
        self.log.start()
        for fw in self.forwarders:
            fw.start()
        self._stop.clear()
        self._retention = threading.Thread(target=self._retain, name="retention", daemon=True)
        self._retention.start()

    def stop(self, drain_s: float = 10.0) -> None:
        """Commit what is queued, give the forwarders ``drain_s`` to catch up, then stop everything."""
        self._stop.set()
        self.log.flush()
        for fw in self.forwarders:
            if not fw.drain(drain_s):
                log.warning("%s: %d events not forwarded yet; they go out on the next start", fw.name, fw.lag)
            fw.stop()
        self.log.stop()
        if self._retention is not None:
            self._retention.join(5.0)

    def retain_now(self) -> int:
        r = self.settings.retention
        return prune(
            self.log,
            self.twins,
            max_events=r.max_events,
            max_age_s=None if r.max_age_days is None else r.max_age_days * 86400.0,
        )

    def _retain(self) -> None:
        while not self._stop.wait(self.settings.retention.interval_s):
            try:
                removed = self.retain_now()
                if removed:
                    log.info("retention removed %d events; oldest kept offset %d", removed, self.log.first)
            except Exception:
                log.exception("retention failed; will retry")
