"""examples/twin_consumer.py against a real server: resume from its saved state, survive kill -9, refuse a gap."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from inspection.store import open_database
from sync.events import Event, dumps
from sync.log import EventLog
from sync.twin import document
from tests.conftest import REPO, free_port, wait_until
from tests.sync.flood_server import FloodProcess, draft_for

CONSUMER = REPO / "examples" / "twin_consumer.py"


def consumer(server: FloodProcess, state: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        str(CONSUMER),
        "--url",
        server.url,
        "--line",
        "line-1",
        "--state",
        str(state),
        "--max-backoff",
        "0.5",
        "--save-every",
        "200",
        *args,
    ]
    env = {**os.environ, "TWINSPECT_TOKEN": server.token}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], timeout: float = 60.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the consumer did not finish in {timeout} s\n{out}\n{err}") from None
    return proc.returncode, out, err


def saved(state: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(state.read_text())
    return value


def test_consumer_resumes_from_its_state_and_survives_a_server_kill(tmp_path: Path) -> None:
    total, hold = 3000, 2000
    release = tmp_path / "release"
    server = FloodProcess(
        tmp_path / "data", free_port(), total, "--batch", "20", "--pause", "0.05",
        "--hold-at", str(hold), "--release-file", str(release),
    ).start()  # fmt: skip
    state = tmp_path / "line-1.json"
    try:
        code, out, err = finish(consumer(server, state, "--max-events", "600"))
        assert code == 0 and out.strip().splitlines()[-1] == "revision 600, in sync", (out, err)
        assert saved(state)["state"]["revision"] == 600 and saved(state)["offset"] == 600

        proc = consumer(server, state, "--until-revision", str(total), "--verify-every", "0.5")
        # it is streaming; the flood is held at `hold` until released, so it cannot end before the kill,
        # however slow the consumer's start is next to the server (it was a race: "the flood ended first")
        assert wait_until(lambda: saved(state)["offset"] >= 1400, 120), saved(state)["offset"]
        assert server.report() is None
        server.kill()
        release.touch()  # the restarted server floods on to `total`
        server.start()
        code, out, err = finish(proc)
        twin_now = httpx.get(server.url + "/api/v1/twin/line-1", headers=server.headers, timeout=10)
        twin_at = httpx.get(
            server.url + "/api/v1/twin/line-1", params={"at": total}, headers=server.headers, timeout=10
        )
    finally:
        server.stop()
    assert code == 0, (out, err)
    resumed = [int(n) for n in re.findall(r"connected; resuming after offset (\d+)", err)]
    assert resumed[0] == 600 and any(600 < n < total for n in resumed[1:]), err  # reconnected mid-stream
    assert f"applied {total - 600}, skipped 0 duplicates" in err, err  # it resumed exactly where it stopped
    lines = out.strip().splitlines()
    assert lines[-1] == f"revision {total}, in sync" and "MISMATCH" not in out, out
    assert sum(line.endswith(", in sync") for line in lines) >= 2, out  # periodic verifications happened too
    kept = saved(state)
    assert kept["offset"] == total and kept["state"]["revision"] == total
    counters = kept["state"]["counters"]
    assert counters["entered"] + counters["inspected"] + counters["exited"] == total
    assert twin_now.headers["etag"] == f'"{total}"'
    assert dumps(document(kept["state"])).encode() == twin_now.content == twin_at.content


def test_consumer_refuses_a_gap_in_the_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = open_database(f"sqlite:///{data / 'twinspect.db'}")
    log = EventLog(db)
    log.append([draft_for(seq) for seq in range(1, 6)])
    log.ingest([Event.from_body(json.dumps(draft_for(7).envelope(7)))])  # an edge lost sequence 6
    assert log.lines()["line-1"] == 7
    db.dispose()
    server = FloodProcess(data, free_port(), 0).start()
    state = tmp_path / "line-1.json"
    try:
        code, out, err = finish(consumer(server, state, "--until-revision", "7"))
    finally:
        server.stop()
    assert code == 3, (out, err)
    assert "gap in the log of line line-1: sequence 5 is followed by 7 at offset 6" in err, err
    assert saved(state)["state"]["revision"] == 5 and saved(state)["offset"] == 5
