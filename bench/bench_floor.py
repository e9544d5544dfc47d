"""Talking to the line, measured (not a test): OPC UA, Modbus, the gate's decision slack, Sparkplug B.

python bench/bench_floor.py [--json] [--boards 16] [--cameras 1 2 4]

1. verdict commit (``EventLog.append`` returns) -> the OPC UA data change seen by a subscribed asyncua
   client (publishing interval 10 ms), p50 / p99 over 200 verdicts;
2. verdict (``RejectGate.verdict``) -> the coils written in a pymodbus "PLC" (client mode), p50 / p99;
3. decision slack (deadline minus decision time, gate 2 s downstream of the trigger, margin 50 ms) on
   the simulated line in real time with 1, 2 and 4 cameras, with the simulated gate's wrong-way count;
4. Sparkplug B: part.inspected events committed as fast as the log takes them -> DDATA on Mosquitto
   (127.0.0.1:1883, ``bash scripts/services.sh``), DDATA messages/s and events/s covered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from floor.config import GateSettings, ModbusSettings, OpcUaSettings, SparkplugSettings  # noqa: E402
from floor.gate import RejectGate  # noqa: E402
from floor.opcua.server import LineHooks, OpcUaServer  # noqa: E402
from floor.outlet import LogTap  # noqa: E402
from floor.outputs import ModbusOutput  # noqa: E402
from floor.results import RecentResults  # noqa: E402
from inspection.store import open_database  # noqa: E402
from sync.log import EventLog  # noqa: E402
from sync.twin import TwinStore  # noqa: E402
from tests.floor.test_gate import Plc  # noqa: E402
from tests.sync.conftest import draft  # noqa: E402

DEEPPCB = REPO.parent / "shared" / "datasets" / "deeppcb-trainval"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float]) -> dict[str, float]:
    a = np.array(values) * 1000.0
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p99_ms": round(float(np.percentile(a, 99)), 2)}


def twin_of(twins: TwinStore) -> Any:
    def read(line: str) -> Any:
        try:
            return json.loads(twins.document_text(line)[1])
        except Exception:
            return None

    return read


def bench_opcua(root: Path, n: int = 200) -> dict[str, Any]:
    from asyncua import Client

    db = open_database(f"sqlite:///{root / 'opcua.db'}")
    log, twins = EventLog(db), None
    twins = TwinStore(log)
    hooks = LineHooks(
        lambda u, p: None, lambda r, w: "", lambda w: "", lambda i: None, lambda: None, lambda: True, twin_of(twins)
    )
    server = OpcUaServer(
        OpcUaSettings(enabled=True, port=free_port(), allow_anonymous=True), "line-1", hooks, RecentResults()
    )
    tap = LogTap()
    tap.route(server.outlet)
    log.add_listener(tap)
    log.start()
    server.start()
    seen: dict[str, float] = {}

    class Handler:
        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            seen[str(val)] = time.monotonic()

    async def run() -> list[float]:
        out = []
        async with Client(server.endpoint) as c:
            idx = await c.get_namespace_index("urn:twinspect:machinevision")
            node = await c.nodes.objects.get_child(
                [
                    f"{idx}:VisionSystems",
                    f"{idx}:line-1",
                    f"{idx}:ResultManagement",
                    f"{idx}:LastResult",
                    f"{idx}:PartId",
                ]
            )
            sub = await c.create_subscription(10, Handler())
            await sub.subscribe_data_change(node, sampling_interval=0)
            await asyncio.sleep(0.5)
            for i in range(n):
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, log.append, [draft("part.inspected", i)])
                t_commit = time.monotonic()
                while f"p{i}" not in seen:
                    await asyncio.sleep(0.001)
                out.append(seen[f"p{i}"] - t_commit)
        return out

    try:
        lat = asyncio.run(run())
    finally:
        server.stop()
        log.stop()
        db.dispose()
    return {"verdicts": n, **pct(lat), "under_100ms": sum(x < 0.1 for x in lat)}


def bench_modbus(n: int = 200) -> dict[str, Any]:
    port = free_port()
    plc = Plc(port)
    written: list[float] = []
    record = plc.writes

    class Stamp(list):  # type: ignore[type-arg]
        def append(self, item: Any) -> None:
            if item[0] == 15:
                written.append(time.monotonic())
            super().append(item)

    plc.writes = Stamp(record)
    out = ModbusOutput(ModbusSettings(enabled=True, mode="client", port=port, timeout_s=1.0))
    gate = RejectGate(GateSettings(enabled=True, travel_s=60, heartbeat_s=60), [out])
    out.start()
    gate.start()
    lat = []
    try:
        for i in range(n):
            t0 = time.monotonic()
            gate.triggered(f"p{i}", "cam1", t0)
            gate.verdict(f"p{i}", "cam1", "fail" if i % 2 else "pass", t0)
            while len(written) <= i:
                time.sleep(0.0005)
            lat.append(written[i] - t0)
    finally:
        gate.stop()
        out.stop()
        plc.stop()
    return {"decisions": n, **pct(lat)}


def subset(root: Path, boards: int) -> Path:
    """A DeepPCB folder with the first ``boards`` boards of trainval (links, no copies)."""
    pcb = root / "PCBData"
    pcb.mkdir(parents=True)
    src = DEEPPCB / "PCBData"
    for group in src.iterdir():
        if group.is_dir():
            (pcb / group.name).symlink_to(group)
    lines = (src / "trainval.txt").read_text().splitlines()[:boards]
    (pcb / "trainval.txt").write_text("\n".join(lines) + "\n")
    return root


def bench_slack(root: Path, cameras: int, boards: int) -> dict[str, Any]:
    from api.cli.line import _simulated_line
    from api.floor_wiring import floor_config
    from api.runtime import build_engine, open_sync
    from api.settings import Settings
    from floor.service import FloorService

    data = root / f"slack-{cameras}"
    gate = GateSettings(enabled=True, travel_s=2.0, margin_ms=50, simulated=True)
    settings = Settings(data_dir=data, gate=gate)
    line = _simulated_line(
        settings,
        subset(data / "boards", boards * cameras),
        cameras,
        realtime=True,
        fps=15.0,
        defect_rate=0.5,
        replay=True,
    )
    sync = open_sync(line)
    engine = build_engine(line, sync=sync)
    floor = FloorService.build(floor_config(line), engine, sync)
    floor.start()
    sync.start()
    engine.start()
    engine.wait(timeout=None)
    inspected = sum(c.parts.inspected for c in engine.status().cameras)
    assert floor.simulated_gate is not None and floor.gate is not None
    floor.simulated_gate.wait(inspected, 30.0)
    slack = [d for d in floor.gate._slack]
    report = floor.simulated_gate.report()
    engine.stop()
    floor.stop()
    sync.stop()
    return {
        "cameras": cameras,
        "boards": inspected,
        "slack_p50_ms": round(float(np.percentile(np.array(slack) * 1000, 50)), 1),
        "slack_p99_ms": round(float(np.percentile(np.array(slack) * 1000, 1)), 1),  # 99% had at least this
        "late": floor.gate.late,
        "wrong_way": report["wrong_way"],
        "escaped": report["escaped"],
    }


def bench_sparkplug(root: Path, n: int = 5000) -> dict[str, Any]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from floor.sparkplug.node import SparkplugNode

    db = open_database(f"sqlite:///{root / 'spb.db'}")
    log = EventLog(db)
    twins = TwinStore(log)
    node = SparkplugNode(SparkplugSettings(enabled=True), f"bench-{os.getpid()}", "line-1", twin_of(twins))
    got: list[float] = []
    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    sub.on_connect = lambda c, *a: c.subscribe(f"spBv1.0/twinspect/DDATA/{node.node_id}/#")
    sub.on_message = lambda c, u, m: got.append(time.monotonic())
    sub.connect("127.0.0.1", 1883)
    sub.loop_start()
    tap = LogTap()
    tap.route(node.outlet)
    log.add_listener(tap)
    log.start()
    node.start()
    while node.births == 0:
        time.sleep(0.05)
    time.sleep(0.5)
    t0 = time.monotonic()
    futures = [log.publish([draft("part.inspected", i)]) for i in range(n)]
    for f in futures:
        f.result(60)
    t_committed = time.monotonic() - t0
    while node.outlet.figures().delivered < n and time.monotonic() - t0 < 60:
        time.sleep(0.05)
    wall = time.monotonic() - t0
    time.sleep(0.5)
    node.stop()
    sub.loop_stop()
    log.stop()
    db.dispose()
    return {
        "events": n,
        "commit_s": round(t_committed, 2),
        "ddata": len(got),
        "ddata_per_s": round(len(got) / wall, 1),
        "events_per_s": round(n / wall, 1),
        "dropped": node.outlet.figures().dropped,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--boards", type=int, default=16, help="Boards per camera for the slack runs.")
    ap.add_argument("--cameras", type=int, nargs="*", default=[1, 2, 4])
    args = ap.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        root = Path(tmp)
        results["opcua_commit_to_datachange"] = bench_opcua(root)
        results["modbus_verdict_to_coil"] = bench_modbus()
        results["sparkplug"] = bench_sparkplug(root)
        results["slack"] = [bench_slack(root, n, args.boards) for n in args.cameras]
    print(json.dumps(results, indent=None if args.json else 2))


if __name__ == "__main__":
    threading.excepthook = lambda a: None
    main()
