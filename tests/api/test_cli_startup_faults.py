"""``twinspect demo / serve`` starting on a full disk or a damaged database: one line, exit 2 (issue 10, item 3).

The disk is a real tmpfs filled with a ballast file; the database is a real SQLite file
with pages overwritten. Before the fix these ended in 71- and 77-line tracebacks.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import REPO, run_cli
from tests.conftest import free_port, wait_until
from tests.faults import SmallDisk, small_disk
from tests.sync.test_log_faults import damage

HOLD = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1]); c.execute("select count(*) from api_tokens").fetchall()
print("holding", flush=True); time.sleep(600)
"""


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("twinspect: error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A tmpfs holding a twinspect data dir whose database is open elsewhere (its WAL in place), then filled."""
    with small_disk(tmp_path / "disk", "tmpfs") as disk:
        if disk.mode != "tmpfs":
            pytest.skip("cannot mount a tmpfs here (not root?): the injected-fault tests cover this path")
        data = disk.root / "data"
        assert run_cli("tokens", "create", "--role", "qa", "--data-dir", str(data)).returncode == 0
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(data / "twinspect.db")], stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
            disk.fill()
            yield disk
        finally:
            holder.kill()
            holder.wait(10)


def test_demo_on_a_full_disk_ends_with_one_line(full_disk: SmallDisk):
    r = run_cli("demo", "--data-dir", str(full_disk.root / "data"), "--port", str(free_port()), timeout=300)
    assert r.returncode == 2
    assert "no space left" in one_line(r.stderr).lower()  # the first write may be a golden image or the database


def test_tokens_create_on_a_full_disk_ends_with_one_line(full_disk: SmallDisk):
    r = run_cli("tokens", "create", "--role", "qa", "--data-dir", str(full_disk.root / "data"))
    assert r.returncode == 2
    assert "no space left" in one_line(r.stderr)


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_starting_on_a_damaged_database_ends_with_one_line(tmp_path: Path, command: str):
    data = tmp_path / "data"
    assert run_cli("tokens", "create", "--role", "qa", "--data-dir", str(data)).returncode == 0
    db = data / "twinspect.db"
    damage(db, lambda n: range(5, 15))  # the schema and alembic_version read fine; the event log does not
    r = run_cli(
        command, "--data-dir", str(data), *(["--port", str(free_port())] if command == "demo" else []), timeout=300
    )
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert "twinspect.db" in line and ("damaged" in line or "malformed" in line)


def _readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return 0, {}


def test_serve_with_its_database_open_runs_not_ready_on_a_full_disk_and_recovers(
    full_disk: SmallDisk, plain_model: Path
):
    """A database that opens (its WAL in place) but cannot be written: serve runs, says why, recovers by itself."""
    port = free_port()
    cfg = full_disk.root.parent / "serve.yaml"  # beside the disk: the config is read, never written
    cfg.write_text(  # a push line with no recipe: a plain-image model
        f"server: {{port: {port}}}\nmodels:\n  defect: {{weights: {plain_model}}}\n"
        "line:\n  cameras:\n    - {type: push, id: door}\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli.main",
            "serve",
            "--config",
            str(cfg),
            "--data-dir",
            str(full_disk.root / "data"),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def not_ready() -> bool:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            return _readyz(port)[0] == 503

        assert wait_until(not_ready, timeout=120, step=0.5)
        body = _readyz(port)[1]
        assert "event-log" in {f["component"] for f in body["faults"]} and "no space left" in body["detail"]
        t0 = time.monotonic()
        full_disk.free()
        assert wait_until(lambda: _readyz(port)[0] == 200, timeout=30, step=0.1)
        print(f"\n[serve on a full disk] ready again {time.monotonic() - t0:.2f} s after space came back")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
