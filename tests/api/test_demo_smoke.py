"""The main job: `twinspect demo` serves the live page, inspects boards, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from tests.conftest import REPO, deeppcb_source, free_port, real_board_subset


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 (loopback only)
        return bytes(r.read())


def test_demo_serves_the_line_and_stops_on_ctrl_c(tmp_path):
    deeppcb_source()  # the real boards must be there
    boards = real_board_subset(tmp_path / "boards", 4, offset=120)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "api.cli.main", "demo", "--port", str(port), "--boards",
                             str(boards), "--data-dir", str(tmp_path / "data")], cwd=REPO, env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status: dict = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"demo exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
            try:
                status = json.loads(get(f"http://127.0.0.1:{port}/api/v1/live/status"))
                if status["counters"]["inspected"] >= 2:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert status.get("counters", {}).get("inspected", 0) >= 2, status
        assert status["cameras"][0]["online"] and status["line_state"] == "running"
        assert b"twinspect" in get(f"http://127.0.0.1:{port}/")
        assert get(f"http://127.0.0.1:{port}/api/v1/live/cameras/cam1/frame.jpg")[:2] == b"\xff\xd8"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-2000:]
    assert f"http://127.0.0.1:{port}/" in out
    assert (tmp_path / "data" / "twinspect.db").is_file()
