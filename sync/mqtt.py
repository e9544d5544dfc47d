"""Forward the event log to an MQTT broker (Mosquitto), with retained twins and the edge's status.

Topics (``prefix`` is ``MqttSettings.topic_prefix``, ``twinspect`` by default), all QoS 1:

    {prefix}/{line}/events/{type}     every event, in log order; payload = its CloudEvents JSON text
    {prefix}/{line}/twin              retained twin document; sent when its revision changed (at most
                                      every ``twin_interval_s`` per line), after each (re)connect, every
                                      ``lease_s / 3`` (it carries the edge's connectivity lease, see
                                      ``sync.connectivity``: a crashed edge's twin shows it offline at
                                      most ``lease_s`` later) and on close (the lease ends then)
    {prefix}/edges/{edge}/status      retained {"edge", "state": "online" | "offline", "time"}; the last
                                      will says "offline" (its time is that of the connect), so a dead,
                                      hung or cut-off edge shows as such after ~1.5 x keepalive_s

``send`` counts an event as forwarded only once the broker sent its PUBACK, and only as part of
the confirmed prefix of the batch; anything after it is sent again from the log on the next
connection (at least once: consumers drop duplicates by the CloudEvents ``id``). Each connection
has its own paho client, which never reconnects by itself: when it drops, ``connected()`` turns
False and the ``Forwarder`` loop calls ``connect()`` again, with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sync.config import MqttSettings
from sync.connectivity import Lease, Renewal, with_lease
from sync.errors import BrokerError
from sync.events import Event, dumps, rfc3339
from sync.forwarder import Forwarder
from sync.log import EventLog
from sync.twin import TwinStore

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0  # wait this long for the CONNACK
CLOSE_TIMEOUT_S = 2.0  # a clean DISCONNECT that cannot be written by then: the socket is shut


class _Link:
    """One paho client and its one connection; a dropped link is closed and replaced, never reused."""

    def __init__(self, client_id: str, will_topic: str, will_payload: bytes, inflight: int, label: str) -> None:
        self.label = label
        self.cond = threading.Condition()
        self.up = False
        self.answered = False  # CONNACK received, or the connection closed before it
        self.refused = ""
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            reconnect_on_failure=False,
        )
        self.client.max_inflight_messages_set(inflight)
        self.client.will_set(will_topic, will_payload, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    def open(self, host: str, port: int, keepalive: int) -> None:
        """Connect and wait for the CONNACK; ``BrokerError`` when refused or unanswered."""
        try:
            self.client.connect(host, port, keepalive)
        except OSError as error:
            raise BrokerError(f"MQTT broker {self.label} unreachable: {error}") from None
        self.client.loop_start()
        with self.cond:
            self.cond.wait_for(lambda: self.answered, CONNECT_TIMEOUT_S)
            up, reason = self.up, self.refused or f"no CONNACK within {CONNECT_TIMEOUT_S:.0f} s"
        if not up:
            self.close()
            raise BrokerError(f"MQTT broker {self.label} did not accept the connection: {reason}")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1, retain=retain)

    def acked(self, infos: Sequence[mqtt.MQTTMessageInfo], timeout: float) -> int:
        """How many of ``infos``, from the first, the broker acknowledged; waits until all are, the link
        drops, or no new acknowledgement came for ``timeout`` seconds."""
        done, last_progress = 0, time.monotonic()
        while True:
            down = not self.up  # read before counting: acks that came before the drop still count
            start = done
            while done < len(infos) and infos[done].rc == MQTTErrorCode.MQTT_ERR_SUCCESS and infos[done].is_published():
                done += 1
            now = time.monotonic()
            if done > start:
                last_progress = now
            if done == len(infos) or down or now - last_progress > timeout:
                return done
            with self.cond:
                self.cond.wait(0.02)  # on_publish runs just before paho marks the message published

    def close(self) -> None:
        """Disconnect cleanly if up, and stop the network thread."""
        sock = self.client.socket()
        self.client.disconnect()
        with self.cond:
            clean = self.cond.wait_for(lambda: not self.up, CLOSE_TIMEOUT_S)
        if not clean and isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.client.loop_stop()

    # paho callbacks (its network thread) ---------------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self.cond:
            self.answered, self.up = True, not reason_code.is_failure
            self.refused = "" if self.up else str(reason_code)
            self.cond.notify_all()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self.cond:
            was_up, self.up, self.answered = self.up, False, True
            self.cond.notify_all()
        if was_up:
            log.info("mqtt %s: disconnected (%s)", self.label, reason_code)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode, properties: Properties | None
    ) -> None:
        with self.cond:
            self.cond.notify_all()


class MqttForwarder(Forwarder):
    """Forwards every event, the retained twins and the edge status to one MQTT broker."""

    def __init__(
        self,
        event_log: EventLog,
        twins: TwinStore,
        settings: MqttSettings,
        edge_id: str,
        *,
        batch: int = 500,
        retry_max_s: float = 5.0,
        ack_timeout_s: float = 5.0,
        lease_s: float = 30.0,
    ) -> None:
        super().__init__(event_log, "mqtt", batch=batch, retry_max_s=retry_max_s)
        self.twins, self.settings, self.edge_id = twins, settings, edge_id
        self.lease_s = lease_s
        self._renewal = Renewal(lease_s)
        self._ready_since = time.time()  # the lease's readySince: when this connection came up
        self.ack_timeout_s = ack_timeout_s
        self.prefix = settings.topic_prefix.rstrip("/")
        self.client_id = f"twinspect-edge-{edge_id}"
        self.status_topic = f"{self.prefix}/edges/{edge_id}/status"
        self.connects = 0  # successful connections since construction
        self.resent = 0  # events published again after a connection dropped before their PUBACK
        self._link: _Link | None = None
        self._sent_upto = 0  # highest offset handed to any connection (to count re-sends)
        self._twin_sent: dict[str, int] = {}  # line -> revision published on this connection
        self._twin_time: dict[str, float] = {}  # line -> monotonic time of that publication

    # topics and payloads -------------------------------------------------------------------------
    def event_topic(self, event: Event) -> str:
        return f"{self.prefix}/{event.line_id}/events/{event.type}"

    def twin_topic(self, line: str) -> str:
        return f"{self.prefix}/{line}/twin"

    def status_payload(self, state: str) -> bytes:
        return dumps({"edge": self.edge_id, "state": state, "time": rfc3339()}).encode()

    # Forwarder -----------------------------------------------------------------------------------
    def connect(self) -> None:
        self._drop()
        s = self.settings
        link = _Link(
            self.client_id,
            self.status_topic,
            self.status_payload("offline"),
            inflight=max(1000, self.batch),
            label=f"{s.host}:{s.port}",
        )
        link.open(s.host, s.port, s.keepalive_s)
        self._link = link
        self.connects += 1
        link.publish(self.status_topic, self.status_payload("online"), retain=True)
        self._twin_sent.clear()  # every twin goes out again right after this connect
        self._twin_time.clear()
        self._ready_since = time.time()
        log.info("mqtt %s: connected as %s; %d events to forward", link.label, self.client_id, self.lag)

    def connected(self) -> bool:
        link = self._link
        return link is not None and link.up

    def send(self, batch: Sequence[Event]) -> int:
        link = self._link
        if link is None:
            raise ConnectionError("not connected to the MQTT broker")
        again = sum(1 for e in batch if e.offset <= self._sent_upto)
        if again:
            self.resent += again
            log.info("mqtt %s: re-sending %d events not confirmed before the connection dropped", link.label, again)
        infos: list[mqtt.MQTTMessageInfo] = []
        for event in batch:
            info = link.publish(self.event_topic(event), event.body.encode())
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:  # the connection is gone: stop here
                break
            infos.append(info)
        if infos:
            self._sent_upto = max(self._sent_upto, batch[len(infos) - 1].offset)
        confirmed = link.acked(infos, self.ack_timeout_s)
        if confirmed < len(batch) and link.up:  # alive but silent: start over on a fresh connection
            log.warning(
                "mqtt %s: broker confirmed %d of %d events, then nothing for %.1f s; reconnecting",
                link.label,
                confirmed,
                len(batch),
                self.ack_timeout_s,
            )
            self._drop()
        return confirmed

    def close(self) -> None:
        link = self._link
        if link is None:
            return
        if link.up:
            self._publish_twins(force=True, ending=True)
            info = link.publish(self.status_topic, self.status_payload("offline"), retain=True)
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                link.acked([info], self.ack_timeout_s)  # and every twin before it: one connection, in order
        self._drop()
        log.info("mqtt %s: closed (status offline)", link.label)

    def after_step(self) -> None:
        self._publish_twins()  # also when idle, so the last revision goes out after the interval

    # internals -----------------------------------------------------------------------------------
    def _publish_twins(self, force: bool = False, ending: bool = False) -> None:
        """Publish (retained) each twin whose revision changed, at most every ``twin_interval_s`` per line,
        and every twin when its lease is due for renewal; ``ending``: with a lease that ends now."""
        link = self._link
        if link is None or not link.up:
            return
        now = time.monotonic()
        renew = force or self._renewal.due()
        for line in self.twins.lines():
            revision, text = self.twins.document_text(line)
            if not renew and self._twin_sent.get(line) == revision:
                continue
            if not renew and now - self._twin_time.get(line, -1e18) < self.settings.twin_interval_s:
                continue
            if ending:
                lease = Lease.ended(line, self.edge_id, self._ready_since)
            else:
                lease = Lease.renewed(line, self.edge_id, self._ready_since, self.lease_s)
            info = link.publish(self.twin_topic(line), with_lease(text, lease).encode(), retain=True)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            self._twin_sent[line], self._twin_time[line] = revision, now
        if renew:
            self._renewal.done()

    def _drop(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close()
