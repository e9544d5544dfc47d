"""Everything ``opcua``, ``gate``, ``sparkplug``, ``spc`` and ``belt`` enable, built around a running engine.

floor = FloorService.build(config, engine, sync, hooks)   # nothing starts yet
floor.start()    # after the event log; outputs attach to the engine's listeners and the log
floor.stop()     # before the engine stops is fine: nothing of the line waits for these

Each piece subscribes to what exists: the engine's listeners (``PartTriggered``, ``Inspected``,
line events) for the gate and the belt model, the event log (through ``LogTap``) for OPC UA,
Sparkplug and SPC. ``status()`` gives every output's figures (queued, dropped, failed) and the gate's
decision slack, for /metrics and the report.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floor.belt import BeltModel
from floor.config import BeltSettings, GateSettings, OpcUaSettings, SparkplugSettings, SpcSettings
from floor.gate import Decision, RejectGate
from floor.opcua.server import EVENT_TYPES, LineHooks, OpcUaServer
from floor.outlet import LogTap, Outlet
from floor.outputs import ModbusOutput, WebhookOutput
from floor.process import ProcessWatch
from floor.results import RecentResults
from floor.simgate import SimulatedGate
from floor.sparkplug.node import SparkplugNode
from inspection.pipeline.engine import Engine
from sync import drafts
from sync.errors import UnknownLine
from sync.events import rfc3339
from sync.schemas import RejectLateData
from sync.service import SyncService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FloorConfig:
    """The five sections of the settings this room reads."""

    opcua: OpcUaSettings
    gate: GateSettings
    sparkplug: SparkplugSettings
    spc: SpcSettings
    belt: BeltSettings
    data_dir: Path | None = None

    @property
    def any(self) -> bool:
        return any(s.enabled for s in (self.opcua, self.gate, self.sparkplug, self.spc, self.belt))


class FloorService:
    """See the module docstring."""

    def __init__(self, config: FloorConfig, engine: Engine, sync: SyncService | None) -> None:
        self.config, self.engine, self.sync = config, engine, sync
        self.line_id = engine.config.line_id
        self.edge_id = sync.settings.edge_id if sync is not None else "edge"
        self.tap = LogTap()
        self.recent = RecentResults()
        self.spc: ProcessWatch | None = None
        self.gate: RejectGate | None = None
        self.simulated_gate: SimulatedGate | None = None
        self.opcua: OpcUaServer | None = None
        self.sparkplug: SparkplugNode | None = None
        self.belt: BeltModel | None = None
        self.outputs: list[Any] = []
        self.running = False

    @classmethod
    def build(
        cls,
        config: FloorConfig,
        engine: Engine,
        sync: SyncService | None,
        hooks: Callable[[FloorService], LineHooks] | None = None,
    ) -> FloorService:
        """What ``config`` enables; ``hooks`` makes the OPC UA server's hooks (it needs the service itself)."""
        self = cls(config, engine, sync)
        publish = sync.log.publish if sync is not None else None
        if config.spc.enabled and publish is not None:
            classes = tuple(engine.defect_worker.detector.class_names)
            self.spc = ProcessWatch(config.spc, publish, self.edge_id, classes)
            self.tap.route(self.spc.outlet, frozenset({"part.inspected"}))
        if config.gate.enabled:
            self._build_gate(config.gate, config.belt)
        if config.opcua.enabled and hooks is not None:
            self.opcua = OpcUaServer(config.opcua, self.line_id, hooks(self), self.recent)
            self.tap.route(self.opcua.outlet, EVENT_TYPES)
            if self.gate is not None:
                self.gate.add_output(self.opcua)
        if config.sparkplug.enabled and sync is not None:
            self.sparkplug = SparkplugNode(
                config.sparkplug,
                self.edge_id,
                self.line_id,
                self.twin,
                late=lambda: self.gate.late if self.gate is not None else 0,
                bdseq_file=config.data_dir / "sparkplug-bdseq" if config.data_dir else None,
            )
            self.tap.route(self.sparkplug.outlet)
        if config.belt.enabled and publish is not None:
            self.belt = BeltModel(config.belt, self.line_id, self.edge_id, publish)
        return self

    def _build_gate(self, settings: GateSettings, belt: BeltSettings) -> None:
        self.gate = RejectGate(settings, [], speed_px_s=belt.speed_px_s, on_late=self._late)
        if settings.modbus.enabled:
            self.outputs.append(ModbusOutput(settings.modbus))
        if settings.webhook.enabled:
            self.outputs.append(WebhookOutput(settings.webhook))
        if settings.simulated:
            self.simulated_gate = SimulatedGate(settings, self.gate.travel_s)
            self.outputs.append(self.simulated_gate)
        for output in self.outputs:
            self.gate.add_output(output)

    def twin(self, line: str) -> dict[str, Any] | None:
        if self.sync is None:
            return None
        try:
            return json.loads(self.sync.twins.document_text(line)[1])  # type: ignore[no-any-return]
        except UnknownLine:
            return None

    def _late(self, d: Decision) -> None:
        if self.sync is None:
            return
        now_wall, now_mono = time.time(), time.monotonic()  # the decision's monotonic times, as wall clock
        data = RejectLateData(
            part_id=d.part_id,
            camera_id=d.camera_id,
            deadline=rfc3339(now_wall - (now_mono - d.deadline)),
            decided=None if d.verdict is None else rfc3339(now_wall - (now_mono - d.decided)),
            late_ms=None if d.verdict is None else round((d.decided - d.deadline) * 1000.0, 1),
            action="reject" if d.action.value == "NG" else "recheck",
            verdict=d.verdict,  # type: ignore[arg-type]
        )
        self.sync.log.publish([drafts.reject_late(self.line_id, self.edge_id, data)])

    # lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every enabled piece; FloorError when one cannot (the rest is stopped again)."""
        try:
            for piece in self._pieces():
                piece.start()
        except Exception:
            self.stop()
            raise
        if self.gate is not None:
            self.engine.add_listener(self.gate)
        if self.simulated_gate is not None:
            self.engine.add_listener(self.simulated_gate)
        if self.belt is not None:
            self.engine.add_listener(self.belt)
        if self.sync is not None:
            self.sync.log.add_listener(self.tap)
        self.running = True

    def stop(self) -> None:
        self.running = False
        for piece in reversed(self._pieces()):
            try:
                piece.stop()
            except Exception:
                log.exception("stopping %s failed", type(piece).__name__)

    def _pieces(self) -> list[Any]:
        pieces = [self.spc, *self.outputs, self.gate, self.opcua, self.sparkplug, self.belt]
        return [p for p in pieces if p is not None]

    def reset(self, who: str) -> str:
        """OPC UA's Reset: every control chart learns a new baseline (process.in_control where drifting)."""
        if self.spc is None:
            return "nothing to reset: spc is off"
        n = self.spc.reset(self.line_id, f"reset by {who}")
        return f"control charts of {self.line_id} learn a new baseline ({n} were drifting)"

    def figures(self) -> list[Outlet[Any]]:
        outlets: list[Any] = [o.outlet for o in self.outputs]
        for piece in (self.opcua, self.sparkplug, self.spc):
            if piece is not None:
                outlets.append(piece.outlet)
        return outlets

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outputs": [vars(o.figures()) for o in self.figures()]}
        if self.gate is not None:
            p50, p99 = self.gate.slack_ms()
            out["gate"] = {
                "decided": self.gate.decided,
                "late": self.gate.late,
                "after_gate": self.gate.after_gate,
                "slack_p50_ms": p50,
                "slack_p99_ms": p99,
            }
        if self.simulated_gate is not None:
            out["simulated_gate"] = self.simulated_gate.report()
        return out
