"""Event feed benchmark: durable appends, replay, verdict-to-SSE latency, MQTT and NATS forwarding.

    python bench/bench_events.py [--events 100000] [--latency-n 500] [--broker-events 20000]

All on this machine, side by side in one run, on a fresh SQLite (WAL) log in a temp dir:
- durable appends/s: events published from 4 producer threads through the log's writer
  (natural batching: one transaction per accumulated batch), until all are committed;
  also one transaction per event for comparison (what batching buys);
- replay events/s: reading the whole log back from offset 0 from the database (a cold
  reader: new EventLog, empty ring), and rebuilding the twin from zero;
- verdict-to-SSE latency: a real uvicorn server with the real app, an SSE client over
  HTTP; each event is published the way the verdict sink does it (``log.publish``) and
  timed until the client has parsed it; p50 / p99;
- MQTT: events forwarded to the local Mosquitto (127.0.0.1:1883) at QoS 1 until every
  PUBACK came back; NATS: events published to JetStream (127.0.0.1:4222) with
  ``Nats-Msg-Id``, then the same events again (all dropped as duplicates).
Aims (issue 4): >= 20,000 appends/s, >= 100,000 replay events/s. For scale, Eclipse Ditto
handles about 800 modifies/s per instance.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspection.store import open_database  # noqa: E402
from sync.config import MqttSettings, NatsSettings, SyncSettings  # noqa: E402
from sync.events import Draft  # noqa: E402
from sync.log import EventLog  # noqa: E402
from sync.twin import TwinStore  # noqa: E402


def drafts(n: int, start: int = 0) -> list[Draft]:
    out = []
    for i in range(start, start + n):
        verdict = "fail" if i % 4 == 0 else "pass"
        data = {
            "part_id": f"p{i}",
            "camera_id": "cam1",
            "track_id": i,
            "inspection_id": f"i{i}",
            "verdict": verdict,
            "reasons": [],
            "board_box": [10.0, 20.0, 630.0, 650.0],
            "frame_seq": i,
            "latency_ms": 120.5,
            "model": {"name": "defect-yolov8n", "version": "1"},
            "defects": [{"class_name": "open", "confidence": 0.91, "xyxy": [1.0, 2.0, 30.0, 40.0]}]
            if verdict == "fail"
            else [],
        }
        out.append(Draft("part.inspected", "line-1", "/twinspect/bench/cam1", data, subject=f"p{i}"))
    return out


def bench_appends(folder: Path, n: int) -> dict[str, float]:
    db = open_database(f"sqlite:///{folder / 'append.db'}")
    log = EventLog(db)
    TwinStore(log)  # the twin follows every commit, as in the service
    log.start()
    per_thread = [drafts(n // 4, k * (n // 4)) for k in range(4)]
    t0 = time.perf_counter()

    def produce(items: list[Draft]) -> None:
        for i in range(0, len(items), 10):  # a verdict batch of the sink is ~10 events
            log.publish(items[i : i + 10])

    threads = [threading.Thread(target=produce, args=(items,)) for items in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.flush(600)
    batched = log.head / (time.perf_counter() - t0)
    log.stop()
    single_n = min(2000, n)
    one = EventLog(open_database(f"sqlite:///{folder / 'single.db'}"))
    t0 = time.perf_counter()
    for d in drafts(single_n):
        one.append([d])
    single = single_n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    cold = EventLog(db)  # empty ring: every read goes to the database
    count = sum(1 for _ in cold.iter_all())
    replay = count / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    TwinStore(EventLog(db))
    rebuild = count / (time.perf_counter() - t0)
    db.dispose()
    return {
        "appends_per_s": batched,
        "appends_per_s_one_tx_each": single,
        "replay_events_per_s": replay,
        "twin_rebuild_events_per_s": rebuild,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_sse_latency(folder: Path, n: int) -> dict[str, float]:
    import httpx
    import uvicorn

    from api.app import create_app
    from api.services import Services
    from api.tokens import TokenStore
    from sync.service import SyncService

    db = open_database(f"sqlite:///{folder / 'sse.db'}")
    sync = SyncService.open(db, SyncSettings(), forwarders=False)
    tokens = TokenStore(db)
    _, token = tokens.create("twin", "bench")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(Services(None, sync, tokens)), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    sent: dict[str, float] = {}
    latencies: list[float] = []
    ready = threading.Event()

    def consume() -> None:
        with httpx.stream(
            "GET",
            f"http://127.0.0.1:{port}/api/v1/events/stream",
            timeout=None,
            headers={"Authorization": f"Bearer {token}"},
        ) as r:
            ready.set()
            for line in r.iter_lines():
                if line.startswith("data: "):
                    got = time.perf_counter()
                    subject = json.loads(line[6:])["subject"]
                    latencies.append(got - sent[subject])
                    if len(latencies) >= n:
                        return

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    ready.wait(10)
    time.sleep(0.3)
    for d in drafts(n):
        sent[d.subject or ""] = time.perf_counter()
        sync.log.publish([d])
        time.sleep(0.005)  # a verdict every 5 ms (200 parts/s)
    reader.join(60)
    server.should_exit = True
    sync.stop()
    ms = sorted(x * 1000 for x in latencies)
    return {
        "sse_latency_p50_ms": statistics.median(ms),
        "sse_latency_p99_ms": ms[int(0.99 * (len(ms) - 1))],
        "sse_events": len(ms),
    }


def bench_mqtt(folder: Path, n: int) -> dict[str, float]:
    from sync.mqtt import MqttForwarder

    db = open_database(f"sqlite:///{folder / 'mqtt.db'}")
    log = EventLog(db)
    twins = TwinStore(log)
    log.append(drafts(n))
    fw = MqttForwarder(
        log, twins, MqttSettings(enabled=True, topic_prefix=f"twinspect-bench-{time.time_ns()}"), "bench"
    )
    t0 = time.perf_counter()
    fw.start()
    fw.drain(300)
    rate = fw.forwarded / (time.perf_counter() - t0)
    fw.stop()
    db.dispose()
    return {"mqtt_qos1_events_per_s": rate}


def bench_nats(folder: Path, n: int) -> dict[str, float]:
    import asyncio

    import nats

    from sync.nats import NatsForwarder

    db = open_database(f"sqlite:///{folder / 'nats.db'}")
    log = EventLog(db)
    log.append(drafts(n))
    tag = f"bench{time.time_ns()}"
    settings = NatsSettings(enabled=True, stream=f"TWINSPECT_BENCH_{tag}", subject_prefix=tag)
    out: dict[str, float] = {}
    for label in ("nats_events_per_s", "nats_duplicates_dropped_per_s"):
        if label != "nats_events_per_s":
            log.set_cursor(NatsForwarder(log, settings, "bench").name, 0)  # publish everything again
        fw = NatsForwarder(log, settings, "bench")
        t0 = time.perf_counter()
        fw.start()
        fw.drain(300)
        out[label] = fw.forwarded / (time.perf_counter() - t0)
        fw.stop()

    async def stream_size() -> int:
        nc = await nats.connect(settings.url)
        js = nc.jetstream()
        info = await js.stream_info(settings.stream)
        await js.delete_stream(settings.stream)
        await nc.close()
        return int(info.state.messages)

    out["nats_stream_messages"] = asyncio.run(stream_size())
    db.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="events for the append / replay figures")
    ap.add_argument("--latency-n", type=int, default=500, help="events timed through SSE")
    ap.add_argument("--broker-events", type=int, default=20_000, help="events forwarded to MQTT and NATS")
    ap.add_argument("--skip", nargs="*", default=[], choices=["append", "sse", "mqtt", "nats"])
    args = ap.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="twinspect-bench-") as tmp:
        folder = Path(tmp)
        steps = [
            ("append", lambda: bench_appends(folder, args.events)),
            ("sse", lambda: bench_sse_latency(folder, args.latency_n)),
            ("mqtt", lambda: bench_mqtt(folder, args.broker_events)),
            ("nats", lambda: bench_nats(folder, args.broker_events)),
        ]
        for name, step in steps:
            if name in args.skip:
                continue
            figures = step()
            results.update(figures)
            for k, v in figures.items():
                print(f"{k:34s} {v:12.1f}", flush=True)
    print(json.dumps({k: round(v, 1) for k, v in results.items()}))


if __name__ == "__main__":
    main()
