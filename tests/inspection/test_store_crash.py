"""A writer killed with SIGKILL mid-run loses no committed batch and leaves no partial one.

The child (same interpreter) writes batches of inspections in a loop and prints a line
after each commit; the parent kills it at a random moment, reopens the database, and
checks every reported batch is there in full and every stored batch is whole.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from inspection.store import open_database
from tests.conftest import REPO
from tests.inspection.test_store import database_url

BATCH = 40
BOXES = 3
ROUNDS = 3

CHILD = f"""
import sys, uuid
from datetime import UTC, datetime
from inspection.store import BoxRecord, EvidenceStore, InspectionRecord, InspectionStore, encode_jpeg, open_database
from inspection.core.outcome import Outcome
import numpy as np

url, evidence_root, tag = sys.argv[1:4]
store = InspectionStore(open_database(url), EvidenceStore(evidence_root))
sha = store.evidence.put(encode_jpeg(np.full((32, 32, 3), 128, np.uint8)))
boxes = tuple(BoxRecord(1.0 + k, 2.0, 30.0, 31.0, 0.9, "open") for k in range({BOXES}))
print("ready", flush=True)
batch = 0
while True:
    now = datetime.now(UTC)
    records = [InspectionRecord(id=str(uuid.uuid4()), part_id=f"{{tag}}-{{batch}}-{{i}}", line_id=tag,
                                camera_id="cam", track_id=i, outcome=Outcome.FAIL, reasons=("x",),
                                model_name="m", model_version="1", frame_seq=batch, captured_at=now,
                                evidence_sha256=sha, board_xyxy=(0.0, 0.0, 32.0, 32.0), crop_width=32,
                                crop_height=32, boxes=boxes) for i in range({BATCH})]
    store.save_many(records)
    print(f"committed {{batch}}", flush=True)
    batch += 1
"""


def run_and_kill(url: str, evidence: Path, tag: str, rng: random.Random) -> list[int]:
    """Start the writer, SIGKILL it after a random number of commits plus a random delay; reported batches."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(evidence), tag],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reported: list[int] = []
    try:
        assert child.stdout is not None
        want = rng.randint(2, 6)
        deadline = time.monotonic() + 20
        for line in child.stdout:
            if line.startswith("committed"):
                reported.append(int(line.split()[1]))
            if len(reported) >= want or time.monotonic() > deadline:
                break
        assert len(reported) >= want, f"writer stopped early: {child.stderr.read() if child.stderr else ''}"
        time.sleep(rng.uniform(0.0, 0.03))  # land anywhere: between batches or inside one
        assert child.poll() is None, "the writer must still be running when it is killed"
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    reported += [int(line.split()[1]) for line in rest.splitlines() if line.startswith("committed")]
    return reported


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_mid_run_keeps_every_committed_batch_whole(backend: str, tmp_path: Path):
    rng = random.Random(1234)
    with database_url(backend, tmp_path) as url:
        open_database(url).dispose()  # migrate once up front: every child open is then a no-op
        for r in range(ROUNDS):
            tag = f"round{r}"
            reported = run_and_kill(url, tmp_path / "evidence", tag, rng)
            engine = open_database(url)  # must open cleanly after the crash
            try:
                with engine.connect() as conn:
                    if backend == "sqlite":
                        assert conn.execute(text("PRAGMA integrity_check")).scalars().all() == ["ok"]
                        assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
                    parts = (
                        conn.execute(text("SELECT part_id FROM inspections WHERE line_id = :t"), {"t": tag})
                        .scalars()
                        .all()
                    )
                    boxes = conn.execute(
                        text(
                            "SELECT count(*) FROM boxes b JOIN inspections i ON i.id = b.inspection_id "
                            "WHERE i.line_id = :t"
                        ),
                        {"t": tag},
                    ).scalar()
            finally:
                engine.dispose()
            per_batch = Counter(int(p.split("-")[1]) for p in parts)
            assert reported == list(range(len(reported)))
            assert set(reported) <= set(per_batch), f"committed batches lost: {set(reported) - set(per_batch)}"
            assert all(n == BATCH for n in per_batch.values()), f"partial batch stored: {per_batch}"
            # at most one more batch than reported: committed, then killed before it could print
            assert sorted(per_batch) == list(range(len(per_batch)))
            assert len(reported) <= len(per_batch) <= len(reported) + 1
            assert boxes == BOXES * len(parts)
