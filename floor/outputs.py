"""The reject gate's outputs beside OPC UA: Modbus TCP and a webhook, each on its own thread and queue.

Both carry the newest decision and a heartbeat, so a PLC sees a dead inspection box (the
heartbeat stops counting) and acts by its own fail-safe rule.

Modbus (``gate.modbus``), from ``first_coil`` and ``first_register``:
    coil +0: NG of the last decision (True: reject or recheck)   coil +1: toggles with every heartbeat
    register +0: heartbeat counter   +1: decision sequence (mod 65536)   +2: decision code (1 OK, 2 NG,
    3 RECHECK)   +3: late decisions (mod 65536)
- ``server``: a pymodbus server the PLC polls (values served from the newest state);
- ``client``: we write them into the PLC after each decision and heartbeat; a peer that is gone
  fails that write (counted), and the next one connects again.

Webhook (``gate.webhook``): one JSON POST per decision and per heartbeat,
``{"type": "decision", "sequence", "part_id", "camera_id", "action", "verdict", "late",
"slack_ms"}`` or ``{"type": "heartbeat", "count", "late", ...}``; an answer other than 2xx, or none
within ``timeout_s``, counts as failed. While it hangs, decisions queue (bounded) and drop, counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from floor.config import ModbusSettings, WebhookSettings
from floor.errors import FloorError
from floor.gate import Action, Beat, Decision
from floor.outlet import Outlet, Pump

log = logging.getLogger(__name__)


def decision_json(d: Decision) -> dict[str, Any]:
    return {
        "type": "decision",
        "sequence": d.sequence,
        "part_id": d.part_id,
        "camera_id": d.camera_id,
        "action": d.action.value,
        "verdict": d.verdict,
        "late": d.late,
        "slack_ms": round(d.slack_s * 1000.0, 2),
    }


def beat_json(b: Beat) -> dict[str, Any]:
    return {
        "type": "heartbeat",
        "count": b.count,
        "late": b.late,
        "slack_p50_ms": b.slack_p50_ms,
        "slack_p99_ms": b.slack_p99_ms,
    }


def _coalesce(batch: list[Decision | Beat]) -> list[Decision | Beat]:
    """Every decision, and only the newest heartbeat (an old one says nothing a newer one does not)."""
    beats = [b for b in batch if isinstance(b, Beat)]
    return [b for b in batch if isinstance(b, Decision)] + beats[-1:]


class _Warn:
    """At most one warning every 10 s per output."""

    def __init__(self, name: str) -> None:
        self.name, self._last = name, 0.0

    def __call__(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last > 10.0:
            self._last = now
            log.warning("%s: %s", self.name, message)


class WebhookOutput:
    """See the module docstring."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings, self.name = settings, "webhook"
        self.outlet: Outlet[Decision | Beat] = Outlet("webhook", settings.queue)
        self.pump = Pump(self.outlet, self._send_all)
        self._warn = _Warn("webhook")

    def offer(self, item: Decision | Beat) -> bool:
        return self.outlet.offer(item)

    def start(self) -> None:
        self.pump.start()

    def stop(self) -> None:
        self.pump.stop()

    def _send_all(self, batch: list[Decision | Beat]) -> None:
        for item in _coalesce(batch):
            body = decision_json(item) if isinstance(item, Decision) else beat_json(item)
            self.outlet.done(self._post(body))

    def _post(self, body: dict[str, Any]) -> bool:
        request = urllib.request.Request(
            self.settings.url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as answer:  # noqa: S310
                answer.read(1024)
                return True
        except urllib.error.HTTPError as error:
            self._warn(f"{self.settings.url} answered {error.code}; the decision counts as failed")
        except (OSError, TimeoutError) as error:
            self._warn(f"{self.settings.url}: {error}; the decision counts as failed")
        return False


class ModbusState:
    """The coils and registers the outputs show, from the newest decision and heartbeat."""

    def __init__(self) -> None:
        self.ng = False
        self.toggle = False
        self.heartbeat = self.sequence = self.code = self.late = 0

    def apply(self, item: Decision | Beat) -> None:
        if isinstance(item, Beat):
            self.heartbeat, self.toggle = item.count & 0xFFFF, not self.toggle
            self.late = item.late & 0xFFFF
        else:
            self.ng = item.action is not Action.OK
            self.sequence, self.code = item.sequence & 0xFFFF, item.action.code

    @property
    def coils(self) -> list[bool]:
        return [self.ng, self.toggle]

    @property
    def registers(self) -> list[int]:
        return [self.heartbeat, self.sequence, self.code, self.late]


class ModbusOutput:
    """See the module docstring."""

    def __init__(self, settings: ModbusSettings) -> None:
        self.settings, self.name = settings, "modbus"
        self.outlet: Outlet[Decision | Beat] = Outlet("modbus", 1024)
        self.state = ModbusState()
        self.pump = Pump(self.outlet, self._apply)
        self._warn = _Warn("modbus")
        self._client: Any = None
        self._server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def offer(self, item: Decision | Beat) -> bool:
        return self.outlet.offer(item)

    def start(self) -> None:
        if self.settings.mode == "server":
            self._serve()
        self.pump.start()

    def stop(self) -> None:
        self.pump.stop()
        if self._client is not None:
            self._client.close()
        if self._server is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
        if self._thread is not None:
            self._thread.join(5.0)

    def _apply(self, batch: list[Decision | Beat]) -> None:
        for item in _coalesce(batch):
            self.state.apply(item)
            if self.settings.mode == "client":
                self.outlet.done(self._write())
            else:
                self.outlet.done(True)

    # client: write into the PLC --------------------------------------------------------------------
    def _write(self) -> bool:
        from pymodbus.client import ModbusTcpClient
        from pymodbus.exceptions import ModbusException

        s = self.settings
        try:
            if self._client is None:
                self._client = ModbusTcpClient(s.host, port=s.port, timeout=s.timeout_s, retries=0)
            if not self._client.connected and not self._client.connect():
                raise ConnectionError(f"cannot connect to {s.host}:{s.port}")
            regs = self._client.write_registers(s.first_register, self.state.registers, device_id=s.unit_id)
            coils = self._client.write_coils(s.first_coil, self.state.coils, device_id=s.unit_id)
            if regs.isError() or coils.isError():
                raise ModbusException(f"the PLC refused the write: {regs if regs.isError() else coils}")
            return True
        except (ModbusException, OSError) as error:
            self._warn(f"{s.host}:{s.port}: {error}; the decision counts as failed, reconnecting")
            if self._client is not None:
                self._client.close()
            return False

    # server: the PLC polls us -----------------------------------------------------------------------
    def _serve(self) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator.simdata import DataType, SimData
        from pymodbus.simulator.simdevice import SimDevice
        from pymodbus.simulator.simutils import SimUtils

        s, state = self.settings, self.state

        async def show(fc: int, start: int, address: int, count: int, registers: list[int], values: Any) -> None:
            if fc in (1, 5, 15):
                registers[:1] = SimUtils.bitsToRegisters(state.coils + [False] * 14)[:1]
            elif fc in (3, 6, 16):
                registers[:4] = state.registers

        bits = [SimData(s.first_coil, count=1, values=False, datatype=DataType.BITS)]
        device = SimDevice(
            s.unit_id,
            simdata=(
                bits,
                list(bits),
                [SimData(s.first_register, count=4, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, values=0, datatype=DataType.REGISTERS)],
            ),
            action=show,
        )
        started = threading.Event()
        failed: list[BaseException] = []

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            server = self._server = ModbusTcpServer(device, address=(s.host, s.port))
            try:
                await server.serve_forever(background=True)  # listens, or raises
            except (OSError, RuntimeError) as error:
                failed.append(error)
                self._server = None
                return
            finally:
                started.set()
            await server.serving

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), name="modbus-server", daemon=True)
        self._thread.start()
        started.wait(10.0)
        if failed or not started.is_set():
            raise FloorError(f"gate.modbus: cannot listen on {s.host}:{s.port}: {failed[0] if failed else 'timeout'}")
