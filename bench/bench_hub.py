"""Many edges, one hub (issue 15): K edge processes publishing to NATS JetStream, one ``twinspect hub`` into PostgreSQL.

    python bench/bench_hub.py [--edges 1,2,4,8] [--rate 100] [--seconds 30] [--no-kill]

For each K: a private nats-server (JetStream, its own store), a fresh PostgreSQL schema, one real
``twinspect hub`` process (config: that database, that stream) and K edge processes. Each edge has
its own SQLite event log and the product's NatsForwarder, and appends a line's story (parts
entering, inspected, exiting, corrections; one line per edge, ``edge-k``) at ``--rate`` events/s
until a common deadline. Mid-run the hub is killed with SIGKILL and started again (at 30% of the
run, 2 s later), and so is edge 1 (at 50%, 1 s later; it goes on from its own log).

Counted from both ends when everything has drained: every event id in every edge's SQLite log
against the hub's event table in PostgreSQL: lost (at an edge, not at the hub), applied twice (an id
stored more than once at the hub), and per line the hub's sequence count against the edge's head.
Lag: the bench polls the hub's table every 50 ms; an event's lag is when the poll first saw it minus
the time the edge stamped on it (so it includes up to one poll interval). Prints the host.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

PG_URL = os.environ.get("TWINSPECT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- one edge process


def edge_main(argv: list[str]) -> int:
    """``bench_hub.py edge DB LINE RATE GO_FILE NATS_JSON``: say "ready", wait for GO_FILE ({start, deadline},
    wall clock), append a story at RATE events/s from start until deadline, then wait until JetStream
    confirmed everything and print the edge's head."""
    from inspection.store import open_database
    from sync.config import NatsSettings
    from sync.events import rfc3339
    from sync.log import EventLog
    from sync.nats import NatsForwarder
    from tests.sync.conftest import draft

    path, line, rate, go_file, settings_json = argv
    settings = NatsSettings.model_validate_json(settings_json)
    db = open_database(f"sqlite:///{path}")
    log = EventLog(db)
    forwarder = NatsForwarder(log, settings, f"edge-{line}", batch=100)
    forwarder.start()
    part, tick = log.head, 0.05  # a restarted edge goes on from its own log
    print("ready", flush=True)
    while not Path(go_file).is_file():
        time.sleep(0.01)
    go = json.loads(Path(go_file).read_text())
    time.sleep(max(0.0, go["start"] - time.time()))
    t0, sent = time.monotonic(), 0
    while time.time() < go["deadline"]:
        due = min(int(float(rate) * (time.monotonic() - t0)) + 1, sent + 2000)  # catch up after a slow commit
        drafts = []
        for _ in range(due - sent):
            kind = ("part.entered", "part.inspected", "part.exited")[part % 3]
            drafts.append(dataclasses.replace(draft(kind, part // 3, line), time=rfc3339()))
            part += 1
        if drafts:
            log.append(drafts)
        sent = due
        time.sleep(tick)
    drained = forwarder.drain(60.0)
    forwarder.stop()
    print(json.dumps({"head": log.head, "forwarded": forwarder.forwarded, "drained": drained}), flush=True)
    db.dispose()
    return 0 if drained else 1


# ---------------------------------------------------------------- the run


class Hub:
    """One ``twinspect hub`` process on a config file; killed with SIGKILL, stopped with SIGINT."""

    def __init__(self, config: Path, data_dir: Path, port: int) -> None:
        self.cmd = [sys.executable, "-m", "api.cli.main", "hub", "--config", str(config)]
        self.cmd += ["--data-dir", str(data_dir), "--port", str(port)]
        self.proc: subprocess.Popen[str] | None = None
        self.stop_line = ""

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=30)
        self.stop_line = next((r for r in out.splitlines() if "hub stopped" in r), out[-300:])


def _edge(tmp: Path, k: int, rate: float, nats_json: str) -> subprocess.Popen[str]:
    args = [str(tmp / f"edge-{k}.db"), f"edge-{k}", str(rate), str(tmp / "go.json"), nats_json]
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "edge", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _schema() -> str:
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    schema = f"twinspect_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)


def _drop(url: str) -> None:
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    schema = make_url(url).query["options"].split("=", 1)[1]  # type: ignore[union-attr]
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


class Watcher:
    """Polls the hub's event table: when each offset was first seen, and the lag behind the edge's stamp."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine

        self.db = create_engine(url)
        self.last = 0
        self.lags: list[float] = []
        self.stamped: list[float] = []
        self.seen_at: list[float] = []

    def poll(self) -> None:
        from sqlalchemy import text
        from sqlalchemy.exc import ProgrammingError

        try:
            with self.db.connect() as conn:
                rows = conn.execute(
                    text('SELECT "offset", time FROM events WHERE "offset" > :o ORDER BY "offset"'), {"o": self.last}
                ).all()
        except ProgrammingError:  # the hub has not created its tables yet
            return
        now = time.time()
        for offset, stamp in rows:
            self.last = max(self.last, int(offset))
            t = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
            self.lags.append(now - t)
            self.stamped.append(t)
            self.seen_at.append(now)

    def ready(self) -> bool:
        from sqlalchemy import inspect

        return "events" in inspect(self.db).get_table_names()

    def body_bytes(self) -> float:
        from sqlalchemy import text

        with self.db.connect() as conn:
            return float(conn.execute(text("SELECT coalesce(avg(length(body)), 0) FROM events")).scalar_one())

    def counts(self) -> tuple[int, int, dict[str, int], set[str]]:
        from sqlalchemy import text

        with self.db.connect() as conn:
            total, distinct = conn.execute(text("SELECT count(*), count(DISTINCT id) FROM events")).one()
            lines: dict[Any, Any] = dict(
                conn.execute(text("SELECT line_id, count(*) FROM events GROUP BY line_id")).all()
            )
            ids = {r[0] for r in conn.execute(text("SELECT id FROM events"))}
        return int(total), int(distinct), {str(k): int(v) for k, v in lines.items()}, ids


def edge_ids(path: Path) -> set[str]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM events")}


def _plan(seconds: float, kill: bool) -> list[tuple[float, str]]:
    if not kill:
        return []
    return [(0.3 * seconds, "kill hub"), (0.3 * seconds + 2, "start hub"), (0.5 * seconds, "kill edge 1")] + [
        (0.5 * seconds + 1, "start edge 1")
    ]


def run_k(k: int, rate: float, seconds: float, kill: bool, tmp: Path) -> dict[str, Any]:
    """One run with ``k`` edges; see the module docstring."""
    from tests.sync.jetstream import PrivateServer

    nats = PrivateServer(free_port(), tmp / "nats")
    nats.start()
    url = _schema()
    nats_cfg = {"enabled": True, "url": nats.url, "stream": "BENCH", "subject_prefix": "bench", "durable": "hub"}
    config = tmp / "hub.json"  # JSON is YAML
    config.write_text(json.dumps({"storage": {"database_url": url}, "sync": {"nats": nats_cfg}}))
    hub, watcher = Hub(config, tmp / "hub-data", free_port()), Watcher(url)
    try:
        hub.start()
        edges = {i: _edge(tmp, i, rate, json.dumps(nats_cfg)) for i in range(1, k + 1)}
        _ready(edges, watcher)  # every process started (imports take seconds on a busy host), the hub's tables made
        t0 = time.time() + 1.0
        deadline = t0 + seconds
        (tmp / "go.json").write_text(json.dumps({"start": t0, "deadline": deadline}))
        events = _plan(seconds, kill)
        reports: dict[int, list[dict[str, Any]]] = {i: [] for i in edges}
        while time.time() < deadline + 60:
            while events and time.time() >= t0 + events[0][0]:
                _act(events.pop(0)[1], hub, edges, reports, tmp, rate, json.dumps(nats_cfg))
            watcher.poll()
            if time.time() > deadline and all(p.poll() is not None for p in edges.values()):
                heads = sum(edge_ids_count(tmp, i) for i in edges)
                if watcher.last >= heads:
                    break
            time.sleep(0.05)
        for i, p in edges.items():
            out, err = p.communicate(timeout=60)
            reports[i].append(json.loads(out.strip().splitlines()[-1]) if out.strip() else {"error": err[-300:]})
        watcher.poll()
        hub.stop()
        return _tally(k, rate, seconds, t0, tmp, watcher, hub, reports)
    finally:
        if hub.proc is not None and hub.proc.poll() is None:
            hub.kill()
        nats.stop()
        watcher.db.dispose()
        _drop(url)


def _ready(edges: dict[int, subprocess.Popen[str]], watcher: Watcher, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    for p in edges.values():
        assert p.stdout is not None
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"an edge did not start: {line!r} {p.stderr.read()[-500:] if p.stderr else ''}")
    while not watcher.ready():
        if time.monotonic() > deadline:
            raise RuntimeError("the hub did not create its tables")
        time.sleep(0.1)
    time.sleep(1.0)  # its consumer subscribes right after


def edge_ids_count(tmp: Path, i: int) -> int:
    return len(edge_ids(tmp / f"edge-{i}.db"))


def _act(
    what: str,
    hub: Hub,
    edges: dict[int, subprocess.Popen[str]],
    reports: dict[int, list[dict[str, Any]]],
    tmp: Path,
    rate: float,
    nats_json: str,
) -> None:
    print(f"    {time.strftime('%H:%M:%S')} {what}", flush=True)
    if what == "kill hub":
        hub.kill()
    elif what == "start hub":
        hub.start()
    elif what == "kill edge 1":
        edges[1].kill()
        edges[1].communicate(timeout=10)
        reports[1].append({"killed": True})
    elif what == "start edge 1":
        edges[1] = _edge(tmp, 1, rate, nats_json)


def _tally(
    k: int, rate: float, seconds: float, t0: float, tmp: Path, watcher: Watcher, hub: Hub, reports: dict[int, Any]
) -> dict[str, Any]:
    total, distinct, lines, hub_ids = watcher.counts()
    sent: set[str] = set()
    heads = {}
    for i in range(1, k + 1):
        ids = edge_ids(tmp / f"edge-{i}.db")
        heads[f"edge-{i}"] = len(ids)
        sent |= ids
    lags = np.array(watcher.lags) * 1000
    # before the kill, less the events in flight when it came (they wait for the restarted hub)
    steady = lags[np.array(watcher.stamped) < t0 + 0.3 * seconds - 2.0] if lags.size else lags
    span = (max(watcher.seen_at) - t0) if watcher.seen_at else float("nan")
    return {
        "edges": k,
        "rate_per_edge": rate,
        "seconds": seconds,
        "events": len(sent),
        "events_per_s_offered": round(len(sent) / seconds, 1),
        "events_per_s_stored": round(total / span, 1) if span == span else None,
        "lag_p50_ms": round(float(np.percentile(lags, 50)), 1) if lags.size else None,
        "lag_p99_ms": round(float(np.percentile(lags, 99)), 1) if lags.size else None,
        "lag_max_ms": round(float(lags.max()), 1) if lags.size else None,
        "steady_lag_p50_ms": round(float(np.percentile(steady, 50)), 1) if steady.size else None,
        "steady_lag_p99_ms": round(float(np.percentile(steady, 99)), 1) if steady.size else None,
        "lost": len(sent - hub_ids),
        "applied_twice": total - distinct,
        "unknown_at_hub": len(hub_ids - sent),
        "per_line_equal": lines == heads,
        "event_bytes": round(watcher.body_bytes()),
        "per_line": {"hub": lines, "edges": heads},
        "hub": hub.stop_line.strip(),
        "edge_reports": reports,
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "edge":
        return edge_main(sys.argv[2:])
    from line_bench import host

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edges", default="1,2,4,8")
    ap.add_argument("--rate", type=float, default=100.0, help="events/s each edge appends")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--no-kill", action="store_true", help="no hub or edge killed mid-run")
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args()
    print(f"[host] {host()}")
    results = []
    for k in (int(x) for x in args.edges.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            print(f"[K={k}] {k} edges x {args.rate:g} events/s for {args.seconds:g} s", flush=True)
            r = run_k(k, args.rate, args.seconds, not args.no_kill, Path(tmp))
            results.append(r)
            print(
                f"  {r['events']} events ({r['events_per_s_offered']}/s offered, {r['events_per_s_stored']}/s stored); "
                f"lag before the kills p50 {r['steady_lag_p50_ms']} ms, p99 {r['steady_lag_p99_ms']} ms; "
                f"over the run p50 {r['lag_p50_ms']} ms, p99 {r['lag_p99_ms']} ms, max {r['lag_max_ms']} ms; "
                f"lost {r['lost']}, applied twice {r['applied_twice']}, per line equal {r['per_line_equal']}",
                flush=True,
            )
            print(f"  hub: {r['hub']}", flush=True)
            if not r["per_line_equal"]:
                print(f"  per line: {r['per_line']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all(r["lost"] == 0 and r["applied_twice"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
