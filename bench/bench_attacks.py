"""Replays the attacks of issue 10 against a running `twinspect serve` and prints what each got.

    python bench/bench_attacks.py [--port 8765] [--keep DIR]

Starts ``twinspect serve`` itself (a push camera ``door`` with its camera token, the shipped
models, a fresh data dir, 1 s feed heartbeats), creates its tokens with ``twinspect tokens
create``, then runs each attack of items 1, 2, 4, 5, 7 and 8 while a probe thread asks
``GET /api/v1/session`` every 0.2 s (and once more after the attack). Per attack it prints the
answer (HTTP status, WebSocket close code or how a feed ended), whether the server stayed
responsive (every probe answered within 1 s), and the server's peak resident memory during
the attack against just before it. Nothing is asserted: the tests do that.
"""

from __future__ import annotations

import argparse
import json
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

REPO = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
PROBE_EVERY_S, PROBE_LIMIT_S = 0.2, 1.0
CAMERA_TOKEN = "door-token"  # noqa: S105 (a bench fixture)


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    tokens: dict[str, str]  # role -> clear token

    def auth(self, role: str = "admin", scheme: str = "Bearer") -> dict[str, str]:
        return {"Authorization": f"{scheme} {self.tokens[role]}"}

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def twinspect(*args: str) -> str:
    exe = Path(sys.executable).with_name("twinspect")
    return subprocess.run([str(exe), *args], check=True, capture_output=True, text=True).stdout


def start_server(folder: Path, port: int) -> Server:
    config = folder / "twinspect.yaml"
    config.write_text(f"""
data_dir: {folder / "data"}
server: {{port: {port}}}
sync: {{feeds: {{heartbeat_s: 1.0}}}}
line:
  line_id: bench-line
  cameras:
    - {{type: push, id: door, max_bytes: {16 * MB}, max_pixels: 40000000}}
  camera_tokens: {{door: {CAMERA_TOKEN}}}
""")
    tokens = {
        role: twinspect("tokens", "create", "--role", role, "--config", str(config)).strip().splitlines()[-1]
        for role in ("admin", "qa", "twin")
    }
    log = open(folder / "server.log", "wb")  # noqa: SIM115 (the child keeps it)
    exe = Path(sys.executable).with_name("twinspect")
    proc = subprocess.Popen([str(exe), "serve", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", port, proc, tokens)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"twinspect serve exited:\n{(folder / 'server.log').read_text()[-3000:]}")
        try:
            if httpx.get(server.url + "/api/v1/session", headers=server.auth(), timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("twinspect serve did not answer within 180 s")


class Probe(threading.Thread):
    """GET /api/v1/session every PROBE_EVERY_S while an attack runs; records the slowest answer and peak RSS."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.done = threading.Event()
        self.slowest, self.peak_rss = 0.0, 0.0
        self.failures = self.count = 0

    def once(self) -> None:
        started = time.monotonic()
        try:
            ok = (
                httpx.get(
                    self.server.url + "/api/v1/session", headers=self.server.auth(), timeout=PROBE_LIMIT_S
                ).status_code
                == 200
            )
        except httpx.HTTPError:
            ok = False
        self.count += 1
        self.failures += not ok
        self.slowest = max(self.slowest, time.monotonic() - started)
        self.peak_rss = max(self.peak_rss, self.server.rss_mb())

    def run(self) -> None:
        while not self.done.is_set():
            self.once()
            self.done.wait(PROBE_EVERY_S)
        self.once()  # right after the attack: a server still chewing on it shows here

    @property
    def responsive(self) -> bool:
        return self.count > 0 and self.failures == 0 and self.slowest <= PROBE_LIMIT_S


# -- attack helpers ---------------------------------------------------------------------------------------


def raw_post(
    server: Server,
    path: str,
    head: dict[str, str],
    total: int,
    chunked: bool,
    fill: bytes = b"0,",
    prefix: bytes = b'{"token":[',
    suffix: bytes = b"0]}",
) -> str:
    """POST ``total`` bytes over a raw socket; read the answer as soon as it comes (the server may refuse early)."""
    if (total - len(prefix) - len(suffix)) % len(fill):
        prefix += b" " * ((total - len(prefix) - len(suffix)) % len(fill))
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as s:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
        lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: bench\r\n{lines}{framing}\r\n\r\n".encode())
        sent = 0
        pieces = [prefix] + [fill * (256 * 1024 // len(fill))] * ((total - len(prefix) - len(suffix)) // (256 * 1024))
        rest = total - len(prefix) - len(suffix) - sum(len(p) for p in pieces[1:])
        pieces += [fill * (rest // len(fill)), suffix]
        try:
            for piece in pieces:
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
                if select_readable(s):
                    break
            else:
                if chunked:
                    s.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        answer = b""
        try:
            while b"\r\n\r\n" not in answer and (got := s.recv(65536)):
                answer += got
        except OSError:
            pass
    status = answer.split(b"\r\n", 1)[0].split(b" ")[1].decode() if answer.startswith(b"HTTP/") else "no answer"
    return f"{status} after {sent / MB:.1f} MB sent"


def select_readable(s: socket.socket) -> bool:
    return bool(select.select([s], [], [], 0)[0])


def post_json(server: Server, path: str, raw: str | bytes, role: str = "admin") -> str:
    r = httpx.post(
        server.url + path,
        content=raw.encode() if isinstance(raw, str) else raw,
        timeout=60,
        headers={**server.auth(role), "Content-Type": "application/json"},
    )
    return f"{r.status_code} ({len(r.content)} B answer)"


def jpeg(size: int = 16) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((size, size, 3), 90, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert ok
    return buf.tobytes()


def push(server: Server, body: bytes, scheme: str = "Bearer") -> str:
    r = httpx.post(
        server.url + "/api/v1/cameras/door/frames",
        content=body,
        timeout=60,
        headers={"Authorization": f"{scheme} {CAMERA_TOKEN}", "Content-Type": "image/jpeg"},
    )
    return str(r.status_code)


def bomb() -> bytes:
    data = jpeg()
    at = data.index(b"\xff\xc0")
    out = bytearray(data)
    out[at + 5 : at + 9] = (20_000).to_bytes(2, "big") * 2
    return bytes(out[:at]) + b"\x00\x13\x37" + bytes(out[at:])  # stray bytes before the frame header


def sse_revoked(server: Server) -> str:
    created = httpx.post(
        server.url + "/api/v1/tokens", json={"role": "twin", "name": "sse-victim"}, headers=server.auth()
    ).json()
    started = None
    with httpx.stream(
        "GET",
        server.url + "/api/v1/events/stream",
        params={"after": 0},
        timeout=30,
        headers={"Authorization": f"Bearer {created['token']}"},
    ) as r:
        for _ in r.iter_lines():
            if started is None:
                httpx.delete(server.url + f"/api/v1/tokens/{created['id']}", headers=server.auth())
                started = time.monotonic()
            if time.monotonic() - started > 30:
                return "still open after 30 s"
    return f"ended {time.monotonic() - (started or 0):.1f} s after revoke"


def ws_revoked(server: Server) -> str:
    created = httpx.post(
        server.url + "/api/v1/tokens", json={"role": "twin", "name": "ws-victim"}, headers=server.auth()
    ).json()
    url = server.url.replace("http://", "ws://") + "/api/v1/events/ws?after=0"
    with connect(url, additional_headers={"Authorization": f"Bearer {created['token']}"}) as ws:
        httpx.delete(server.url + f"/api/v1/tokens/{created['id']}", headers=server.auth())
        started = time.monotonic()
        try:
            while time.monotonic() - started < 30:
                ws.recv(timeout=30)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else "none"
            return f"closed {code} {time.monotonic() - started:.1f} s after revoke"
        except TimeoutError:
            pass
    return "still open after 30 s"


def last_event_id(server: Server, value: str) -> str:
    with httpx.stream(
        "GET", server.url + "/api/v1/events/stream", timeout=10, headers={**server.auth("twin"), "Last-Event-ID": value}
    ) as r:
        return str(r.status_code)


def attacks() -> list[tuple[str, Callable[[Server], str]]]:
    no_token = {"Content-Type": "application/json"}
    review = f"/api/v1/inspections/{uuid.uuid4()}/review"
    expected = "/api/v1/twin/bench-line/expected"
    return [
        (
            "1 50 MB JSON, Content-Length, no token -> /session",
            lambda s: raw_post(s, "/api/v1/session", no_token, 50 * MB, chunked=False),
        ),
        (
            "1 50 MB JSON, chunked, no token -> /session",
            lambda s: raw_post(s, "/api/v1/session", no_token, 50 * MB, chunked=True),
        ),
        (
            "1 0.9 MB JSON that fails validation (echo)",
            lambda s: post_json(s, "/api/v1/session", b'{"token":[' + b"0," * 450_000 + b"0]}", "qa"),
        ),
        (
            "1 30 MB golden upload, no token -> /recipes",
            lambda s: raw_post(
                s,
                "/api/v1/recipes",
                {"Content-Type": "multipart/form-data; boundary=b"},
                30 * MB,
                chunked=False,
                fill=b"\0",
                prefix=b"--b\r\n",
                suffix=b"\r\n--b--\r\n",
            ),
        ),
        (
            "1 20 MB frame -> push (max_bytes 16 MiB)",
            lambda s: raw_post(
                s,
                "/api/v1/cameras/door/frames",
                {"Authorization": f"Bearer {CAMERA_TOKEN}", "Content-Type": "image/jpeg"},
                20 * MB,
                chunked=False,
                fill=b"\0",
                prefix=b"\xff\xd8\xff",
                suffix=b"\xff\xd9",
            ),
        ),
        ("2 JPEG bomb: 20000x20000 in 634 B, stray bytes before SOF", lambda s: push(s, bomb())),
        (
            "2 JPEG whose size cannot be read (SOS before SOF)",
            lambda s: push(s, b"\xff\xd8\xff\xda\x00\x08" + bytes(600) + b"\xff\xd9"),
        ),
        (
            "4 review xyxy NaN / Infinity / 1e400",
            lambda s: " ".join(
                post_json(s, review, f'{{"action":"add_box","class_name":"open","xyxy":[1,2,{v},4]}}', "qa").split()[0]
                for v in ("NaN", "Infinity", "1e400")
            ),
        ),
        (
            "4 review comment with a lone surrogate",
            lambda s: post_json(s, review, '{"action":"comment","comment":"x\\ud800"}', "qa"),
        ),
        (
            "4 expected state throughput_per_min: Infinity",
            lambda s: post_json(s, expected, '{"line_status":"stopped","throughput_per_min":Infinity}', "twin"),
        ),
        (
            "5 expected state, 200,000-key boards_in_view (5 MB)",
            lambda s: post_json(
                s, expected, json.dumps({"boards_in_view": {f"c{i}": 1 for i in range(200_000)}}), "twin"
            ),
        ),
        (
            "5 expected state, 30,000-key boards_in_view (0.4 MB)",
            lambda s: post_json(
                s, expected, json.dumps({"boards_in_view": {f"c{i}": 1 for i in range(30_000)}}), "twin"
            ),
        ),
        ("7 SSE stream, its token revoked", sse_revoked),
        ("7 WebSocket feed, its token revoked", ws_revoked),
        ("8 push with a lowercase 'bearer' scheme", lambda s: push(s, jpeg(64), scheme="bearer")),
        ("8 Last-Event-ID '+5' / '1_000'", lambda s: f"{last_event_id(s, '+5')} / {last_event_id(s, '1_000')}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8765, help="Port of the server on 127.0.0.1.")
    parser.add_argument("--keep", type=Path, default=None, help="Keep the data dir and server log here.")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="twinspect-attacks-"))
    folder.mkdir(parents=True, exist_ok=True)
    server = start_server(folder, args.port)
    try:
        time.sleep(2)  # let the engine settle after start
        print(f"twinspect serve (pid {server.proc.pid}) at {server.url}: RSS {server.rss_mb():.0f} MB at rest\n")
        rows = []
        for name, attack in attacks():
            before = server.rss_mb()
            probe = Probe(server)
            probe.start()
            try:
                status = attack(server)
            except Exception as error:  # a bench reports, it does not stop
                status = f"error: {error.__class__.__name__}: {str(error)[:60]}"
            probe.done.set()
            probe.join(30)
            rows.append(
                (
                    name,
                    status,
                    "y" if probe.responsive else f"n (slowest {probe.slowest:.1f} s)",
                    f"{probe.peak_rss - before:+.0f} MB",
                )
            )
            print(f"  {name}: {status}", file=sys.stderr, flush=True)
        head = ("attack (issue 10 item)", "status", "responsive (probes <= 1 s)", "RSS change (peak)")
        widths = [max(len(r[i]) for r in [*rows, head]) for i in range(4)]
        for row in [head, tuple("-" * w for w in widths), *rows]:
            print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        print(f"\nserver RSS after all attacks: {server.rss_mb():.0f} MB")
    finally:
        server.proc.terminate()
        try:
            server.proc.wait(30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
