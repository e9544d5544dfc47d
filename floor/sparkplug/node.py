"""A Sparkplug B edge node: the line and its cameras as devices that SCADA discovers by their births.

Topics ``spBv1.0/{group}/{NBIRTH|NDEATH|NDATA|NCMD}/{node}`` and
``spBv1.0/{group}/{DBIRTH|DDATA|DDEATH}/{node}/{device}``; payloads are Tahu's protobuf.

- Each MQTT session has a birth/death sequence ``bdSeq`` (0-255, one more each session, kept in
  ``bdseq`` beside the data when a path is given): the session's will is an NDEATH carrying it,
  and the NBIRTH that follows the connect carries the same value, so a host knows which birth a
  death ends. The broker publishes the will when the edge dies (kill -9, a cut cable).
- ``seq`` (0-255, wrapping) numbers every NBIRTH (0), DBIRTH, NDATA, DDATA and DDEATH of a session.
- Devices: the line (``line-1``: counters, quality, the last verdict, process states, late gate
  decisions) and each camera (state, its last verdict). DBIRTH gives every metric with its type and
  value; DDATA carries what changed since (at most one per device every ``min_interval_ms``).
- NCMD ``Node Control/Rebirth`` = true: NBIRTH and every DBIRTH again. An NCMD with another metric
  is refused: NDATA ``Node Control/Last Error`` names it (Sparkplug has no answer topic) and it is
  counted in ``bad_commands``.
- The broker gone: the node reconnects with backoff, a new ``bdSeq`` and new births.
Committed events reach the node through a bounded outlet: the event log's writer never waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from floor.config import SparkplugSettings
from floor.outlet import Outlet, Pump
from floor.results import Counters, Result
from floor.sparkplug import sparkplug_b_pb2 as pb
from sync.events import Event

log = logging.getLogger(__name__)
NAMESPACE = "spBv1.0"
INT, LONG, DOUBLE, BOOL, STRING = 7, 8, 10, 11, 12  # Sparkplug data types: UInt32, UInt64, Double, Boolean, String
REBIRTH = "Node Control/Rebirth"
LAST_ERROR = "Node Control/Last Error"
Metrics = dict[str, tuple[int, Any]]  # name -> (data type, value)


def payload(metrics: Metrics, seq: int | None) -> bytes:
    """A Sparkplug B payload with ``metrics`` (and ``seq`` unless None), stamped now."""
    now = int(time.time() * 1000)
    p = pb.Payload()  # type: ignore[attr-defined]
    p.timestamp = now
    if seq is not None:
        p.seq = seq
    for name, (dtype, value) in metrics.items():
        m = p.metrics.add()
        m.name, m.timestamp, m.datatype = name, now, dtype
        if dtype == STRING:
            m.string_value = str(value)
        elif dtype == BOOL:
            m.boolean_value = bool(value)
        elif dtype == DOUBLE:
            m.double_value = float(value)
        elif dtype == INT:
            m.int_value = int(value)
        else:
            m.long_value = int(value)
    return p.SerializeToString()


def line_metrics(counters: Counters, last: Result | None, process: dict[str, str], late: int) -> Metrics:
    out: Metrics = {
        "Counters/Inspected": (LONG, counters.inspected),
        "Counters/Pass": (LONG, counters.passed),
        "Counters/Fail": (LONG, counters.failed),
        "Counters/Uncertain": (LONG, counters.uncertain),
        "Counters/Uninspected": (LONG, counters.uninspected),
        "Quality/Coverage": (DOUBLE, counters.coverage),
        "Quality/Yield": (DOUBLE, counters.yield_),
        "Last/PartId": (STRING, last.part_id if last else ""),
        "Last/Verdict": (STRING, last.verdict if last else ""),
        "Last/DefectCount": (INT, last.defect_count if last else 0),
        "Last/DefectClasses": (STRING, ",".join(last.classes) if last else ""),
        "Gate/Late": (LONG, late),
    }
    for chart, state in sorted(process.items()):
        out[f"Process/{chart}"] = (STRING, state)
    return out


class SparkplugNode:
    """See the module docstring."""

    def __init__(
        self,
        settings: SparkplugSettings,
        edge_id: str,
        line_id: str,
        twin: Callable[[str], dict[str, Any] | None],
        *,
        late: Callable[[], int] = lambda: 0,
        bdseq_file: Path | None = None,
    ) -> None:
        self.settings, self.line_id, self.twin, self.late = settings, line_id, twin, late
        self.node_id = settings.edge_node_id or edge_id
        self.prefix = f"{NAMESPACE}/{settings.group_id}"
        self.bdseq_file = bdseq_file
        self.bdseq = self._load_bdseq()
        self.seq = 0
        self.outlet: Outlet[Event] = Outlet("sparkplug", settings.queue)
        self.pump = Pump(self.outlet, self._events, idle=self._tick, tick_s=0.1)
        self.births = self.ddata = self.bad_commands = self.connects = 0
        self._client: mqtt.Client | None = None
        self._up = threading.Event()
        self._lock = threading.RLock()
        self._devices: dict[str, Metrics] = {}  # device -> its metrics as last published
        self._dirty: dict[str, Metrics] = {}  # device -> metrics changed since
        self._last_sent: dict[str, float] = {}
        self._last: Result | None = None
        self._cameras: dict[str, Metrics] = {}
        self._rebirth = False
        self._retry_at = 0.0
        self._attempt = 0

    def topic(self, kind: str, device: str | None = None) -> str:
        return f"{self.prefix}/{kind}/{self.node_id}" + (f"/{device}" if device else "")

    # lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._refresh_line()
        self.pump.start()

    def stop(self) -> None:
        self.pump.stop()
        client, self._client = self._client, None
        if client is not None:
            with self._lock:  # a clean stop: NDEATH ourselves, then disconnect (the will is not sent then)
                info = client.publish(self.topic("NDEATH"), payload({"bdSeq": (LONG, self.bdseq)}, None), qos=1)
            info.wait_for_publish(2.0)
            client.disconnect()
            client.loop_stop()

    # the connection ----------------------------------------------------------------------------------
    def _tick(self) -> None:
        if not self._up.is_set() and time.monotonic() >= self._retry_at:
            try:
                self._connect()
                self._attempt = 0
            except OSError as error:
                self._attempt += 1
                self._retry_at = time.monotonic() + min(5.0, 0.2 * 2**self._attempt)
                if self._attempt == 1:
                    log.warning("sparkplug: broker %s:%s: %s; retrying", self.settings.host, self.settings.port, error)
                return
        if self._up.is_set():
            if self._rebirth:
                self._rebirth = False
                self._birth()
            self._flush()

    def _connect(self) -> None:
        old, self._client = self._client, None
        if old is not None:
            old.loop_stop()
        self.bdseq = (self.bdseq + 1) % 256
        self._save_bdseq()
        s = self.settings
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"twinspect-spb-{self.node_id}",
            clean_session=True,
            reconnect_on_failure=False,
        )
        client.will_set(self.topic("NDEATH"), payload({"bdSeq": (LONG, self.bdseq)}, None), qos=1, retain=False)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *a: self._up.clear()
        client.on_message = self._on_message
        client.connect(s.host, s.port, s.keepalive_s)
        client.loop_start()
        self._client = client
        if not self._up.wait(5.0):
            client.loop_stop()
            self._client = None
            raise ConnectionError("no CONNACK within 5 s")
        self.connects += 1
        self._birth()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            client.subscribe(self.topic("NCMD"), qos=1)
            self._up.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            names = {m.name: m for m in pb.Payload.FromString(message.payload).metrics}  # type: ignore[attr-defined]
        except Exception:
            names = {}
        if REBIRTH in names and names[REBIRTH].boolean_value:
            self._rebirth = True  # the pump's thread answers
            return
        self.bad_commands += 1
        unknown = ", ".join(sorted(names)) or "an unreadable payload"
        log.warning("sparkplug: NCMD with %s refused (known: %s)", unknown, REBIRTH)
        self._publish(self.topic("NDATA"), {LAST_ERROR: (STRING, f"unknown NCMD metric: {unknown}")})

    def _publish(self, topic: str, metrics: Metrics, seq: bool = True) -> None:
        client = self._client
        if client is None:
            return
        with self._lock:
            number = self.seq if seq else None
            if seq:
                self.seq = (self.seq + 1) % 256
            client.publish(topic, payload(metrics, number), qos=0)

    # births and data -----------------------------------------------------------------------------------
    def _birth(self) -> None:
        with self._lock:
            self.seq = 0
            node: Metrics = {"bdSeq": (LONG, self.bdseq), REBIRTH: (BOOL, False), LAST_ERROR: (STRING, "")}
            self._publish(self.topic("NBIRTH"), node)
            self._refresh_line()
            devices = {self.line_id: {**self._devices.get(self.line_id, {}), **self._dirty.pop(self.line_id, {})}}
            for camera, metrics in self._cameras.items():
                devices[camera] = metrics
            self._dirty.clear()
            for device, metrics in devices.items():
                self._publish(self.topic("DBIRTH", device), metrics)
                self._devices[device] = dict(metrics)
            self.births += 1

    def _flush(self) -> None:
        now = time.monotonic()
        gap = self.settings.min_interval_ms / 1000.0
        with self._lock:
            for device in list(self._dirty):
                if now - self._last_sent.get(device, 0.0) < gap:
                    continue
                metrics = self._dirty.pop(device)
                if device not in self._devices:
                    self._publish(self.topic("DBIRTH", device), metrics)
                    self._devices[device] = dict(metrics)
                    continue
                self._publish(self.topic("DDATA", device), metrics)
                self._devices[device].update(metrics)
                self._last_sent[device] = now
                self.ddata += 1

    def _events(self, batch: list[Event]) -> None:
        with self._lock:
            for event in batch:
                if event.line_id != self.line_id:
                    continue
                if event.type == "part.inspected":
                    self._last = Result.of(event)
                    self._camera(self._last.camera_id, {"LastVerdict": (STRING, self._last.verdict)})
                    self._camera(self._last.camera_id, {"LastPartId": (STRING, self._last.part_id)})
                elif event.type in ("camera.online", "camera.offline"):
                    data = event.cloudevent()["data"]
                    online = event.type == "camera.online"
                    self._camera(data["camera_id"], {"Online": (BOOL, online), "State": (STRING, data["state"])})
            self._refresh_line()
        self.outlet.done(True, len(batch))
        if self._up.is_set():
            self._flush()

    def _camera(self, camera: str, metrics: Metrics) -> None:
        base = self._cameras.setdefault(
            camera, {"Online": (BOOL, True), "State": (STRING, "running"), "LastVerdict": (STRING, "")}
        )
        base.setdefault("LastPartId", (STRING, ""))
        base.update(metrics)
        self._changed(camera, base if camera not in self._devices else metrics)

    def _refresh_line(self) -> None:
        doc = self.twin(self.line_id)
        counters = Counters.of_twin(doc) if doc is not None else Counters()
        process = {}
        if doc is not None:
            for chart, st in doc["features"].get("process", {}).get("properties", {}).items():
                process[chart] = f"drifting since {st['since']}" if st["state"] == "drifting" else "in_control"
        self._changed(self.line_id, line_metrics(counters, self._last, process, self.late()))

    def _changed(self, device: str, metrics: Metrics) -> None:
        """Remember what differs from the device's last published metrics (everything before its birth)."""
        known = self._devices.get(device, {})
        diff = {k: v for k, v in metrics.items() if known.get(k) != v}
        if diff:
            self._dirty.setdefault(device, {}).update(diff)

    def _load_bdseq(self) -> int:
        try:
            return int(self.bdseq_file.read_text()) % 256 if self.bdseq_file else 255
        except (OSError, ValueError):
            return 255  # the first session then has bdSeq 0

    def _save_bdseq(self) -> None:
        if self.bdseq_file is not None:
            try:
                self.bdseq_file.write_text(str(self.bdseq))
            except OSError as error:
                log.warning("sparkplug: cannot keep bdSeq in %s: %s", self.bdseq_file, error)
