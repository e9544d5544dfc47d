"""The real twinspect API on one port, with a thread that floods events on ``line-1`` (for feed tests).

    python tests/sync/flood_server.py --port 8123 --data-dir /tmp/d --total 3000 [--batch 50] [--pause 0.05]
                                      [--go-file /tmp/d/go] [--hold-at 2000 --release-file /tmp/d/release]

The app is ``create_app(Services(engine=None, sync=SyncService.open(...)))`` on a SQLite file
in ``--data-dir``, served by uvicorn. Once the server is up (and ``--go-file`` exists, when
given), the flood thread publishes batches of drafts through ``sync.log.publish`` until the
line's sequence reaches ``--total``; with ``--hold-at N`` it stops at sequence N until
``--release-file`` exists, so a test can act mid-flood however slow its own side is (a flood
that ends before the test got there would test nothing). It continues from the log's last sequence, so a server
killed mid-flood and started again on the same data dir finishes the same stream. When the
flood is committed it writes ``flood.json`` (sequences and seconds) to the data dir. Callers
authenticate with the twin-role bearer token the server writes to ``<data-dir>/token``.

Tests drive it through ``FloodProcess`` (start, wait for the flood, SIGKILL, restart).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from api.app import create_app
from api.services import Services
from api.tokens import Role, TokenStore
from inspection.store import open_database
from sync.config import SyncSettings
from sync.events import Draft
from sync.service import SyncService

LINE = "line-1"
DEFECTS = ("open", "short", "mousebite", "spur", "copper", "pin-hole")


def draft_for(sequence: int) -> Draft:
    """The event that takes ``sequence`` on the line: parts enter, get inspected, exit, in turn."""
    part, step = (sequence - 1) // 3, (sequence - 1) % 3
    part_id, camera = f"p{part}", f"cam{part % 2 + 1}"
    source = f"/twinspect/flood/{camera}"
    if step == 0:
        return Draft("part.entered", LINE, source, {"part_id": part_id, "camera_id": camera}, subject=part_id)
    if step == 2:
        return Draft("part.exited", LINE, source, {"part_id": part_id, "camera_id": camera}, subject=part_id)
    fail = part % 4 == 3
    defect = {"class_name": DEFECTS[(part // 4) % len(DEFECTS)], "confidence": 0.9, "xyxy": [1, 2, 30, 40]}
    defects = [defect] if fail else []
    return Draft(
        "part.inspected",
        LINE,
        source,
        {"part_id": part_id, "camera_id": camera, "verdict": "fail" if fail else "pass", "defects": defects},
        subject=part_id,
    )


def _wait_for(path: Path, server: uvicorn.Server) -> None:
    while not path.exists() and not server.should_exit:
        time.sleep(0.01)


def flood(sync: SyncService, server: uvicorn.Server, args: argparse.Namespace) -> None:
    while not server.started and not server.should_exit:
        time.sleep(0.01)
    if args.go_file is not None:
        _wait_for(Path(args.go_file), server)
    first = sequence = sync.log.lines().get(LINE, 0)
    started = time.monotonic()
    while sequence < args.total and not server.should_exit:
        if args.hold_at is not None and sequence >= args.hold_at:
            _wait_for(Path(args.release_file), server)
            if server.should_exit:
                return
        n = min(args.batch, args.total - sequence)
        if args.hold_at is not None and sequence < args.hold_at:
            n = min(n, args.hold_at - sequence)
        sync.log.publish([draft_for(sequence + i + 1) for i in range(n)])
        sequence += n
        time.sleep(args.pause)
    if server.should_exit:
        return
    sync.log.flush()
    report = {
        "first_sequence": first,
        "last_sequence": sync.log.lines().get(LINE, 0),
        "seconds": round(time.monotonic() - started, 3),
    }
    tmp = Path(args.data_dir) / "flood.json.tmp"
    tmp.write_text(json.dumps(report))
    os.replace(tmp, Path(args.data_dir) / "flood.json")
    print("flood done", json.dumps(report), flush=True)


class FloodProcess:
    """flood_server.py as a child process on a fixed port and data dir (so it can be killed and restarted)."""

    def __init__(self, data_dir: Path, port: int, total: int, *extra: str) -> None:
        self.data_dir, self.port, self.total, self.extra = data_dir, port, total, list(extra)
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 60.0) -> FloodProcess:
        """Start (again) and wait until the API answers; the flood report of a previous run is removed."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "flood.json").unlink(missing_ok=True)
        self.starts = len(list(self.data_dir.glob("server-*.log"))) + 1  # one log per start, in this data dir
        out = open(self.data_dir / f"server-{self.starts}.log", "wb")  # noqa: SIM115 (the child keeps it)
        cmd = [
            sys.executable,
            __file__,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--total",
            str(self.total),
            *self.extra,
        ]
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"flood server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/api/v1/twin", headers=self.headers, timeout=1.0).status_code == 200:
                    return self
            except (httpx.TransportError, FileNotFoundError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"flood server did not answer in {timeout} s:\n{self.log()}")

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def log(self) -> str:
        return (self.data_dir / f"server-{self.starts}.log").read_text(errors="replace")

    def report(self) -> dict[str, Any] | None:
        """The flood report of the current run, once the flood is committed."""
        path = self.data_dir / "flood.json"
        return json.loads(path.read_text()) if path.exists() else None  # type: ignore[no-any-return]

    def wait_flood(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (report := self.report()) is None:
            if time.monotonic() > deadline or (self.proc is not None and self.proc.poll() is not None):
                raise RuntimeError(f"the flood did not finish in {timeout} s:\n{self.log()}")
            time.sleep(0.05)
        return report

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush of what is queued."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (graceful: commits what is queued), SIGKILL after 15 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True, help="Port on 127.0.0.1.")
    parser.add_argument("--data-dir", required=True, help="Folder of the SQLite database (kept across restarts).")
    parser.add_argument("--total", type=int, default=3000, help="Flood until line-1 has this many events.")
    parser.add_argument("--batch", type=int, default=50, help="Drafts per publish.")
    parser.add_argument("--pause", type=float, default=0.05, help="Seconds between two batches.")
    parser.add_argument("--go-file", default=None, help="Start flooding only once this file exists.")
    parser.add_argument("--heartbeat", type=float, default=1.0, help="SSE heartbeat seconds.")
    parser.add_argument("--hold-at", type=int, default=None, help="Stop at this sequence until --release-file exists.")
    parser.add_argument("--release-file", default=None, help="The file that releases a flood held by --hold-at.")
    args = parser.parse_args()
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    db = open_database(f"sqlite:///{Path(args.data_dir) / 'twinspect.db'}")
    sync = SyncService.open(db, SyncSettings(), forwarders=False)
    tokens = TokenStore(db)
    token_file = Path(args.data_dir) / "token"
    if not token_file.exists():  # one twin-role token per data dir, kept across restarts
        token_file.write_text(tokens.create(Role.TWIN, "flood-reader")[1])
    app = create_app(Services(engine=None, sync=sync, tokens=tokens, heartbeat_s=args.heartbeat))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning", timeout_graceful_shutdown=2)
    )
    threading.Thread(target=flood, args=(sync, server, args), name="flood", daemon=True).start()
    server.run()
    db.dispose()


if __name__ == "__main__":
    main()
