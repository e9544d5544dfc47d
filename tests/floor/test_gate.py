"""The reject gate: decisions in time or fail-safe, and its outputs against real servers (Modbus, HTTP)."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from floor.config import GateSettings, ModbusSettings, WebhookSettings
from floor.gate import Action, Beat, Decision, RejectGate
from floor.outputs import ModbusOutput, WebhookOutput
from floor.simgate import SimulatedGate
from tests.conftest import free_port


def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.items: list[Decision | Beat] = []

    def offer(self, item: Decision | Beat) -> bool:
        self.items.append(item)
        return True

    def decisions(self) -> list[Decision]:
        return [d for d in self.items if isinstance(d, Decision)]


@pytest.fixture
def gate() -> Iterator[tuple[RejectGate, Collect, list[Decision]]]:
    out, late = Collect(), []
    g = RejectGate(GateSettings(enabled=True, travel_s=60.0, heartbeat_s=0.05), [out], on_late=late.append)
    g.start()
    yield g, out, late
    g.stop()


def test_in_time_decisions_follow_the_verdict_and_the_uncertain_policy(gate: Any) -> None:
    g, out, late = gate
    now = time.monotonic()
    for i, verdict in enumerate(("pass", "fail", "uncertain")):
        g.triggered(f"p{i}", "cam1", now)
        g.verdict(f"p{i}", "cam1", verdict, now)
    assert [(d.part_id, d.action, d.late) for d in out.decisions()] == [
        ("p0", Action.OK, False),
        ("p1", Action.NG, False),
        ("p2", Action.RECHECK, False),
    ]
    assert all(59.0 < d.slack_s < 60.0 for d in out.decisions()) and not late
    p50, p99 = g.slack_ms()
    assert 59_000 < p99 <= p50 < 60_000
    until(lambda: any(isinstance(i, Beat) for i in out.items))  # the heartbeat runs


def test_a_late_verdict_is_never_silently_late(gate: Any) -> None:
    """The board's deadline passed before its verdict: the fail-safe rule decided (NG), once, with reject.late."""
    g, out, late = gate
    g.triggered("p9", "cam1", time.monotonic() - 61.0)  # crossed the trigger 61 s ago: already past the gate
    until(lambda: len(out.decisions()) == 1)
    assert g.verdict("p9", "cam1", "pass", time.monotonic() - 61.0) is None  # too late to change anything
    g.verdict("p10", "cam1", "pass", time.monotonic() - 61.0)  # never seen at the trigger, late as well
    decisions = out.decisions()
    assert [(d.part_id, d.action, d.late) for d in decisions] == [("p9", Action.NG, True), ("p10", Action.NG, True)]
    assert [d.part_id for d in late] == ["p9", "p10"] and g.late == 2 and g.after_gate == 1


class Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    status = 200
    hang = threading.Event()

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if Hook.hang.is_set():
            Hook.hang.wait(0)  # hold the answer back until the client gives up
            time.sleep(1.0)
        Hook.received.append(body)
        self.send_response(Hook.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    Hook.received, Hook.status = [], 200
    Hook.hang.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/gate"
    server.shutdown()
    server.server_close()


def _decision(i: int, action: Action = Action.NG) -> Decision:
    now = time.monotonic()
    return Decision(i, f"p{i}", "cam1", action, "fail", False, now, now + 2, now + 1.95, now)


def test_webhook_posts_decisions_and_counts_failures(hook: str) -> None:
    out = WebhookOutput(WebhookSettings(enabled=True, url=hook, timeout_s=0.3, queue=4))
    out.start()
    try:
        out.offer(_decision(1))
        out.offer(Beat(1, 0, 10.0, 5.0))
        until(lambda: len(Hook.received) == 2)
        assert Hook.received[0]["part_id"] == "p1" and Hook.received[0]["action"] == "NG"
        assert Hook.received[1]["type"] == "heartbeat"
        Hook.status = 500
        out.offer(_decision(2))
        until(lambda: out.outlet.figures().failed == 1)
        Hook.hang.set()  # a webhook that hangs: nothing waits for it but its own thread; the queue drops, counted
        t0 = time.monotonic()
        for i in range(3, 40):
            assert out.offer(_decision(i)) in (True, False)
        assert time.monotonic() - t0 < 1.0  # offering never waits for the webhook
        until(lambda: out.outlet.figures().dropped > 0)
    finally:
        Hook.hang.clear()
        out.stop()


class Plc:
    """A real pymodbus server playing the PLC, recording every write it gets."""

    def __init__(self, port: int) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator.simdata import DataType, SimData
        from pymodbus.simulator.simdevice import SimDevice

        self.writes: list[tuple[int, list[Any]]] = []

        async def record(fc: int, start: int, address: int, count: int, regs: list[int], values: Any) -> None:
            if values is not None:
                self.writes.append((fc, list(values)))

        bits = [SimData(0, count=1, values=False, datatype=DataType.BITS)]
        device = SimDevice(
            1,
            simdata=(
                bits,
                list(bits),
                [SimData(0, count=4, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, values=0, datatype=DataType.REGISTERS)],
            ),
            action=record,
        )
        ready = threading.Event()

        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.server = ModbusTcpServer(device, address=("127.0.0.1", port))
            await self.server.serve_forever(background=True)
            ready.set()
            await self.server.serving

        self.thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(5)
        self.thread.join(5)


def test_modbus_client_writes_into_the_plc_and_survives_it_disappearing() -> None:
    port = free_port()
    out = ModbusOutput(ModbusSettings(enabled=True, mode="client", port=port, timeout_s=0.5))
    out.start()
    try:
        out.offer(_decision(1))  # nobody listens yet: failed, counted, no exception
        until(lambda: out.outlet.figures().failed == 1)
        plc = Plc(port)
        try:
            out.offer(_decision(2, Action.NG))
            until(lambda: any(fc == 15 for fc, _ in plc.writes))
            regs = next(v for fc, v in plc.writes if fc == 16)
            coils = next(v for fc, v in plc.writes if fc == 15)
            assert regs[1:3] == [2, Action.NG.code] and coils[:1] == [True]
        finally:
            plc.stop()
        out.offer(_decision(3))  # the PLC is gone again
        until(lambda: out.outlet.figures().failed == 2)
    finally:
        out.stop()


def test_modbus_server_serves_the_newest_decision_and_heartbeat() -> None:
    from pymodbus.client import ModbusTcpClient

    port = free_port()
    out = ModbusOutput(ModbusSettings(enabled=True, mode="server", port=port))
    out.start()
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
    try:
        assert client.connect()
        out.offer(_decision(5, Action.NG))
        out.offer(Beat(7, 1, 0.0, 0.0))

        def shown() -> bool:
            regs = client.read_holding_registers(0, count=4, device_id=1).registers
            return bool(regs == [7, 5, Action.NG.code, 1])

        until(shown)
        assert client.read_coils(0, count=2, device_id=1).bits[:2] == [True, True]
        out.offer(_decision(6, Action.OK))
        until(lambda: client.read_coils(0, count=2, device_id=1).bits[0] is False)
    finally:
        client.close()
        out.stop()


def test_simulated_gate_reports_wrong_way_and_escapes() -> None:
    """Boards decided in time go their verdict's way; a board whose verdict came late is rejected (fail-safe):
    one board sent the wrong way, no escape. The gate acts 3 s after the trigger (ample for a decision)."""
    settings = GateSettings(enabled=True, travel_s=3.0, margin_ms=20, heartbeat_s=0.05)
    sim = SimulatedGate(settings, travel_s=3.0)
    planner = RejectGate(settings, [sim])
    sim.start()
    planner.start()
    try:
        now = time.monotonic()
        boards = [("p0", "pass", now), ("p1", "fail", now), ("p2", "uncertain", now), ("late", "pass", now - 5.0)]
        for part, _, t in boards:  # the photo eye at the trigger tells both
            planner.triggered(part, "cam1", t)
            sim.timer.schedule(t + 3.0, part)
        until(lambda: planner.late == 1)  # the late board's deadline passed: fail-safe at once
        for part, verdict, t in boards:
            planner.verdict(part, "cam1", verdict, t)
            sim._verdicts[part] = verdict
        assert sim.wait(4, 30.0)
        report = sim.report()
        assert report["boards"] == 4 and report["escaped"] == 0
        assert report["wrong_way"] == 1 and report["late"] == 1  # the good board rejected by the fail-safe rule
        assert (report["ok"], report["ng"], report["recheck"]) == (1, 2, 1)
    finally:
        planner.stop()
        sim.stop()
