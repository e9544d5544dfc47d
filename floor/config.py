"""Settings of the line integration (OPC UA, reject gate, Sparkplug B, SPC, belt model).

Part of the one settings model (``api.settings.Settings``: top-level ``opcua``, ``gate``,
``sparkplug``, ``spc``, ``belt``); built in ``main()``. Every output is off by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"  # MQTT topic level, OPC UA browse name


class OpcUaUserCertificate(BaseModel):
    """A client certificate that signs in as a user with a role."""

    model_config = ConfigDict(extra="forbid")

    certificate: Path = Field(description="The client's certificate (DER or PEM).")
    name: str = Field(min_length=1, max_length=100, description="Who this certificate is (audit trail).")
    role: Literal["twin", "qa", "ml", "admin"] = Field(
        description="Its twinspect role: ml or admin may call SelectRecipe and Reset; every role reads."
    )


class OpcUaSettings(BaseModel):
    """The OPC UA server (OPC 40100 Machine Vision model) of this line."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Serve the line over OPC UA.")
    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0: every interface).")
    port: int = Field(4840, ge=1, le=65535, description="TCP port (4840 is OPC UA's).")
    allow_anonymous: bool = Field(
        False,
        description="Let clients in without credentials (read and subscribe only; methods that change the "
        "line still need a user). Off: a user name and a twinspect token as password, or a certificate.",
    )
    namespace: str = Field("urn:twinspect:machinevision", description="Namespace URI of twinspect's nodes.")
    certificate: Path | None = Field(
        None, description="Server certificate (DER or PEM); with private_key it enables signed and encrypted endpoints."
    )
    private_key: Path | None = Field(None, description="The server certificate's private key (PEM).")
    users: list[OpcUaUserCertificate] = Field(
        default_factory=list, description="Client certificates that sign in as users (needs certificate + private_key)."
    )
    queue: int = Field(4096, ge=16, le=1_000_000, description="Events waiting for the server; beyond: counted drops.")

    @model_validator(mode="after")
    def _key_pair(self) -> OpcUaSettings:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("certificate and private_key go together")
        if self.users and self.certificate is None:
            raise ValueError("users sign in with certificates over a signed endpoint: set certificate and private_key")
        return self


class ModbusSettings(BaseModel):
    """Reject decisions on Modbus TCP: a coil and registers the PLC reads (server) or that we write (client)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Write each decision and the heartbeat to Modbus TCP.")
    mode: Literal["server", "client"] = Field(
        "server", description="server: the PLC reads our coils and registers; client: we write into the PLC."
    )
    host: str = Field("127.0.0.1", description="server: address to listen on; client: the PLC's address.")
    port: int = Field(5020, ge=1, le=65535, description="TCP port (502 is Modbus's, which needs root to listen on).")
    unit_id: int = Field(1, ge=0, le=247, description="Modbus unit (slave) id.")
    first_coil: int = Field(
        0, ge=0, le=65000, description="First coil: NG of the last decision, then the heartbeat toggle."
    )
    first_register: int = Field(
        0,
        ge=0,
        le=65000,
        description="First holding register: heartbeat counter, decision sequence, decision code (1 OK, 2 NG, "
        "3 recheck), late count.",
    )
    timeout_s: float = Field(1.0, gt=0, le=30, description="client: longest wait for one write.")


class WebhookSettings(BaseModel):
    """Reject decisions as HTTP POSTs (JSON) to a URL."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="POST each decision and the heartbeat.")
    url: str = Field("http://127.0.0.1:9000/twinspect/gate", pattern=r"^https?://", description="Where to POST.")
    timeout_s: float = Field(0.5, gt=0, le=30, description="Longest wait for an answer; longer counts as failed.")
    queue: int = Field(256, ge=1, le=100_000, description="Decisions waiting to be posted; beyond: counted drops.")


class GateSettings(BaseModel):
    """The reject gate downstream of the trigger line: where it is, what it does when the decision is late."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Turn each board's verdict into an OK / NG decision for the gate.")
    travel_s: float | None = Field(
        2.0,
        gt=0,
        le=3600,
        description="Time a board takes from the trigger line to the gate; unset: distance_px / belt.speed_px_s.",
    )
    distance_px: float | None = Field(
        None, gt=0, description="Distance from the trigger line to the gate, in frame pixels (with belt.speed_px_s)."
    )
    margin_ms: float = Field(
        50.0, ge=0, le=60_000, description="A decision must leave this long before the board reaches the gate."
    )
    fail_safe: Literal["reject", "recheck"] = Field(
        "reject", description="What happens to a board whose decision would be late: NG, or divert to recheck."
    )
    uncertain: Literal["reject", "recheck", "pass"] = Field(
        "recheck", description="The decision for an uncertain verdict."
    )
    heartbeat_s: float = Field(1.0, gt=0, le=60, description="Heartbeat period of every output (PLC watchdog).")
    simulated: bool = Field(
        False, description="Run a simulated gate that acts on each board and records what it did (replay, tests)."
    )
    modbus: ModbusSettings = Field(default_factory=ModbusSettings, description="Modbus TCP output.")
    webhook: WebhookSettings = Field(default_factory=WebhookSettings, description="Webhook output.")

    @model_validator(mode="after")
    def _where(self) -> GateSettings:
        if self.enabled and self.travel_s is None and self.distance_px is None:
            raise ValueError("set travel_s, or distance_px with belt.speed_px_s")
        return self


class SparkplugSettings(BaseModel):
    """A Sparkplug B edge node on an MQTT broker."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Publish births, deaths and data as a Sparkplug B edge node.")
    host: str = Field("127.0.0.1", description="Broker host.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    group_id: str = Field("twinspect", pattern=ID_PATTERN, description="Sparkplug group id.")
    edge_node_id: str | None = Field(
        None, pattern=ID_PATTERN, description="Sparkplug edge node id; default: sync.edge_id."
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive (the broker sends NDEATH after ~1.5x).")
    min_interval_ms: float = Field(
        0.0, ge=0, le=60_000, description="Least time between two DDATA of one device (0: one per change)."
    )
    queue: int = Field(4096, ge=16, le=1_000_000, description="Events waiting for the node; beyond: counted drops.")


class SpcSettings(BaseModel):
    """Statistical process control: p-charts per defect class, a u-chart of defects per board."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Chart every line's defect rates and emit process.drift.")
    subgroup_boards: int = Field(50, ge=2, le=100_000, description="A subgroup closes after this many boards...")
    subgroup_s: float | None = Field(
        None, gt=0, description="...or after this many seconds (event time) with at least min_boards boards."
    )
    min_boards: int = Field(10, ge=1, description="Fewest boards a time-closed subgroup needs (else it goes on).")
    baseline_subgroups: int = Field(25, ge=5, le=10_000, description="Subgroups that set the centre line and limits.")
    rules: list[Literal[1, 2, 3, 4]] = Field(
        default_factory=lambda: [1, 2, 3, 4],  # type: ignore[arg-type,return-value]
        description="Western Electric rules: 1 beyond 3 sigma; 2 of 3 beyond 2 sigma; 4 of 5 beyond 1 sigma; "
        "8 in a row on one side.",
    )
    recover_subgroups: int = Field(
        8, ge=1, le=10_000, description="A drifting chart is back in control after this many subgroups with no rule."
    )
    history: int = Field(100, ge=10, le=10_000, description="Points kept per chart (dashboard, OPC UA).")


class BeltSettings(BaseModel):
    """The line model: the belt speed and board spacing the twin expects."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Check the boards against the line model; differences are twin.drift.")
    speed_px_s: float | None = Field(None, gt=0, description="Belt speed in frame pixels per second; unset: learned.")
    pitch_s: float | None = Field(None, gt=0, description="Time between two boards at the trigger; unset: learned.")
    learn_boards: int = Field(20, ge=3, le=10_000, description="Boards to learn speed and pitch from when unset.")
    gap_factor: float = Field(
        2.5, gt=1, le=100, description="No board for this many pitches while the belt runs: a gap."
    )
    check_s: float = Field(0.2, gt=0, le=60, description="How often the model looks for missing boards.")
