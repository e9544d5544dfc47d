"""Settings of the sync package (event log retention, feeds, MQTT, NATS JetStream, hub).

Part of the one settings model (``api.settings.Settings.sync``); built in ``main()``.
"""

from __future__ import annotations

import socket

from pydantic import BaseModel, ConfigDict, Field


def _default_edge_id() -> str:
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())
    return name[:64] or "edge"


class RetentionSettings(BaseModel):
    """How much of the event log is kept (the twin keeps a snapshot at each cut)."""

    model_config = ConfigDict(extra="forbid")

    max_events: int | None = Field(5_000_000, ge=1, description="Keep at most this many newest events (None: all).")
    max_age_days: float | None = Field(30.0, gt=0, description="Drop events older than this many days (None: never).")
    interval_s: float = Field(60.0, gt=0, description="How often retention runs, in seconds.")


class FeedSettings(BaseModel):
    """SSE / WebSocket / HTTP pull feeds."""

    model_config = ConfigDict(extra="forbid")

    heartbeat_s: float = Field(15.0, gt=0, description="SSE comment / WebSocket ping interval when idle, seconds.")
    max_page: int = Field(1000, ge=1, le=100_000, description="Largest page of GET /api/v1/events (limit).")


class MqttSettings(BaseModel):
    """Forwarding to an MQTT broker (Mosquitto)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Forward every event and the twin to the broker.")
    host: str = Field("127.0.0.1", description="Broker host.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    topic_prefix: str = Field("twinspect", pattern=r"^[^#+]+$", description="First topic level.")
    keepalive_s: int = Field(30, ge=5, description="MQTT keepalive in seconds (the last will fires after ~1.5x).")
    twin_interval_s: float = Field(0.5, ge=0, description="Least time between two retained twin publications.")


class NatsSettings(BaseModel):
    """Forwarding to NATS JetStream (edges) and consuming from it (hub)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Publish every event to JetStream (edge).")
    url: str = Field("nats://127.0.0.1:4222", description="NATS server URL.")
    stream: str = Field("TWINSPECT_EVENTS", pattern=r"^[A-Za-z0-9_-]+$", description="JetStream stream name.")
    subject_prefix: str = Field(
        "twinspect", pattern=r"^[A-Za-z0-9_-]+$", description="Subjects are <prefix>.<line>.<type>."
    )
    duplicate_window_s: float = Field(120.0, gt=0, description="JetStream de-duplication window (Nats-Msg-Id).")
    durable: str = Field("twinspect-hub", pattern=r"^[A-Za-z0-9_-]+$", description="Durable consumer of the hub.")
    evidence_bucket: str = Field(
        "TWINSPECT_EVIDENCE",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="JetStream object store bucket of the evidence JPEGs (named by sha256): "
        "edges put them, the hub fetches them.",
    )
    leases_bucket: str = Field(
        "TWINSPECT_LEASES",
        pattern=r"^[A-Za-z0-9_-]+$",
        description="JetStream key-value bucket of each line's connectivity lease (edges renew it, the hub shows it).",
    )


class SyncSettings(BaseModel):
    """Event feed and twin sync."""

    model_config = ConfigDict(extra="forbid")

    edge_id: str = Field(
        default_factory=_default_edge_id,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="This edge box's id (event sources, MQTT status topic); default: host name.",
    )
    lease_s: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="Connectivity lease in the live twins (retained MQTT copy, hub): renewed every third of it, "
        "so a crashed edge shows offline at most this many seconds after it died.",
    )
    retention: RetentionSettings = Field(default_factory=RetentionSettings, description="Event log retention.")
    feeds: FeedSettings = Field(default_factory=FeedSettings, description="SSE / WebSocket / pull feeds.")
    mqtt: MqttSettings = Field(default_factory=MqttSettings, description="MQTT forwarding.")
    nats: NatsSettings = Field(default_factory=NatsSettings, description="NATS JetStream forwarding / hub.")
