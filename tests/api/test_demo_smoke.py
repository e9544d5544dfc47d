"""The main job: `twinspect demo` serves the live page, inspects boards, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from tests.conftest import REPO, deeppcb_source, free_port, real_board_subset


def get(url: str, token: str | None = None) -> bytes:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:  # noqa: S310
        return bytes(r.read())


def read_lines(proc: subprocess.Popen, into: list[str]) -> threading.Thread:
    def run() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            into.append(line)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_demo_serves_the_line_and_stops_on_ctrl_c(tmp_path):
    deeppcb_source()  # the real boards must be there
    boards = real_board_subset(tmp_path / "boards", 4, offset=120)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli.main",
            "demo",
            "--port",
            str(port),
            "--boards",
            str(boards),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = read_lines(proc, lines)
    try:
        status: dict = {}
        deadline = time.monotonic() + 120
        token = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"demo exited with {proc.returncode}: {''.join(lines)[-2000:]}")
            token = next((ln.strip() for ln in lines if ln.strip().startswith("tsp_")), None)
            if token is None:
                time.sleep(0.5)
                continue
            try:
                status = json.loads(get(f"http://127.0.0.1:{port}/api/v1/live/status", token))
                if status["counters"]["inspected"] >= 2:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert status.get("counters", {}).get("inspected", 0) >= 2, status
        assert status["cameras"][0]["online"] and status["line_state"] == "running"
        assert b"twinspect" in get(f"http://127.0.0.1:{port}/")
        assert get(f"http://127.0.0.1:{port}/api/v1/live/cameras/cam1/frame.jpg", token)[:2] == b"\xff\xd8"
        try:
            get(f"http://127.0.0.1:{port}/api/v1/live/status")
            raise AssertionError("the live status answered without a token")
        except urllib.error.HTTPError as error:
            assert error.code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(10)
    out = "".join(lines)
    assert proc.returncode == 0, out[-2000:]
    assert f"http://127.0.0.1:{port}/signin" in out
    assert f"http://127.0.0.1:{port}/" in out
    assert (tmp_path / "data" / "twinspect.db").is_file()
