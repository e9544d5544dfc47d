"""The engine on a small filesystem that fills mid-run and is freed again (issue 10, item 3).

The whole verdict path runs for real (tracking, trigger, verdict thread, evidence files,
SQLite on the small disk, the event log's outbox); only the two models are stand-ins (the
part model reads the simulated frame's truth, the defect model finds nothing). The camera
lets frames out in three phases: disk fine, disk full, disk freed. Every board shown must
end as a stored verdict (or a counted failure where the bounds say so), and the service
must say it is not ready while the disk is full and recover by itself when it is freed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.app import create_app
from api.live_view import LiveView
from api.services import Services
from api.tokens import Role, TokenStore
from camera.simulated import LineMotion, SimulatedLine, replay_sequence
from camera.synth import LineStyle
from inspection.core.classes import DEEPPCB_CLASSES
from inspection.ml.datasets.boards import board_pool
from inspection.pipeline.engine import Engine, EngineConfig
from inspection.pipeline.events import Inspected, PartUninspected
from inspection.pipeline.parts import PartsConfig
from inspection.pipeline.recording import ModelInfo
from inspection.pipeline.trigger import LineTriggerConfig
from inspection.pipeline.verdict_backlog import StoreLimits
from inspection.pipeline.verdict_sink import SinkLimits
from inspection.store import InspectionStore, open_database
from sync.config import SyncSettings
from sync.recorder import EngineRecorder
from sync.service import SyncService
from tests.conftest import wait_until
from tests.faults import BlankDefects, GatedSource, OracleDetector, SmallDisk, small_disk

STYLE = LineStyle(width=320, height=192, board_px=140, seam_every_px=100)
MODEL = ModelInfo("blank-defects", "1")


@dataclass
class Rig:
    disk: SmallDisk
    engine: Engine
    sync: SyncService
    store: InspectionStore
    gate: GatedSource
    client: TestClient
    shown: int  # boards the camera will show
    seen: Counter[str]  # Inspected / PartUninspected events the listeners got

    def requests(self) -> int:
        return sum(loop.parts.counters.inspected for loop in self.engine.loops)

    def caught_up(self) -> bool:
        """Every frame let out is tracked, and every board it asked for reached the verdict thread."""
        loop = self.engine.loops[0]
        return (
            self.gate.delivered == self.gate.released
            and loop.frames == self.gate.delivered
            and self.engine.sink.backlog.last_seq == self.requests()
        )


def _counting(seen: Counter[str]) -> Any:
    def listener(event: Any) -> None:
        if isinstance(event, Inspected | PartUninspected):
            seen[type(event).__name__] += 1

    return listener


@contextmanager
def open_rig(root: Path, boards: Path, mode: str, limits: SinkLimits) -> Iterator[Rig]:
    """The engine with its event log on a small disk at ``root``, its camera gated, its API in a test client."""
    with small_disk(root, mode) as disk:
        db = open_database(f"sqlite:///{disk.root / 'twinspect.db'}")
        disk.attach(db)
        store = InspectionStore(db, disk.evidence_store(disk.root / "evidence"))
        sync = SyncService.open(db, SyncSettings(edge_id="edge-disk"), forwarders=False)
        pool = board_pool(boards)
        sequence = replay_sequence(pool, 0.5, seed=0)
        inner = SimulatedLine(
            "cam1", pool, style=STYLE, motion=LineMotion(fps=30, speed_px_s=900), realtime=False, sequence=sequence
        )
        gate = GatedSource(inner)
        trigger = LineTriggerConfig(start=(160.0, 0.0), end=(160.0, 192.0), direction="right_to_left")
        config = EngineConfig(parts=PartsConfig(trigger=trigger), sink=limits)
        recorder = EngineRecorder(sync.log, sync.twins, "line-1", "edge-disk", {"defect": MODEL}, store=store)
        engine = Engine(
            config,
            [gate],
            OracleDetector(gate),
            BlankDefects(DEEPPCB_CLASSES),  # type: ignore[list-item]
            MODEL,
            evidence=store.evidence,
            recorder=recorder,
        )
        seen: Counter[str] = Counter()
        engine.add_listener(_counting(seen))
        tokens = TokenStore(db)
        _, qa = tokens.create(Role.QA, "qa")  # before the disk fills: creating one needs space too
        app = create_app(Services(LiveView(engine, sync.twins), sync, tokens, inspections=store))
        client = TestClient(app, headers={"Authorization": f"Bearer {qa}"})  # no lifespan: the test drives
        sync.start()
        engine.start()
        try:
            yield Rig(disk, engine, sync, store, gate, client, len(sequence), seen)
        finally:
            engine.stop()
            sync.stop()
            db.dispose()


@pytest.fixture(params=["tmpfs", "injected"])
def make_rig(
    request: pytest.FixtureRequest, tmp_path: Path, deeppcb_factory: Any
) -> Iterator[Callable[[SinkLimits], Rig]]:
    """``make_rig(limits)``: a rig on a real tmpfs, or with ENOSPC injected at the evidence store and database."""
    with ExitStack() as stack:

        def make(limits: SinkLimits | None = None) -> Rig:
            return stack.enter_context(
                open_rig(tmp_path / "disk", deeppcb_factory(boards=12), request.param, limits or SinkLimits())
            )

        yield make


def _stored(rig: Rig) -> list[tuple[str, str, str, str]]:
    with rig.store.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(  # type: ignore[misc]
                    "SELECT part_id, outcome, reasons, evidence_sha256 FROM inspections ORDER BY part_id"
                )
            ).all()
        ]


def _phase(rig: Rig, frames: int) -> None:
    rig.gate.release(frames)
    assert wait_until(rig.caught_up, timeout=60), "the pipeline did not catch up with the frames let out"


def _run_through_a_full_disk(rig: Rig) -> dict[str, Any]:
    """Phase 1: disk fine; 2: full while boards keep coming; 3: freed, then the rest. Returns what was seen."""
    sink = rig.engine.sink
    _phase(rig, 60)
    assert wait_until(lambda: sink.backlog.pending() == 0, timeout=30)
    before = sink.backlog.stored
    assert before >= 2 and rig.client.get("/readyz").status_code == 200

    rig.disk.fill()
    _phase(rig, 80)
    retries = rig.engine.telemetry.store_retries.labels("evidence")
    assert wait_until(lambda: retries._value.get() >= 3, timeout=30), "writes are retried while the disk is full"
    assert rig.engine.faults(), "a full disk must show as a fault"
    during = sink.backlog.pending()
    ready = rig.client.get("/readyz")
    status = rig.client.get("/api/v1/live/status").json()
    metrics = rig.client.get("/metrics").text

    t0 = time.monotonic()
    rig.disk.free()
    assert wait_until(lambda: not rig.engine.faults() and sink.backlog.pending() == 0, timeout=30), (
        "storing must recover by itself once space is back"
    )
    recovery_s = time.monotonic() - t0
    assert rig.client.get("/readyz").status_code == 200

    rig.gate.release(1 << 30)
    assert rig.engine.wait(120), "the rest of the boards must be stored"
    return {
        "before": before,
        "during": during,
        "ready": ready,
        "status": status,
        "metrics": metrics,
        "recovery_s": recovery_s,
    }


def test_every_board_is_stored_through_a_full_disk_and_the_service_says_so(make_rig: Callable[..., Rig]):
    rig = make_rig()
    seen = _run_through_a_full_disk(rig)
    backlog = rig.engine.sink.backlog
    assert seen["during"] >= 2, "boards must have come while the disk was full"
    ready = seen["ready"]
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert "evidence" in {f["component"] for f in ready.json()["faults"]} and "no space" in ready.json()["detail"]
    status = seen["status"]
    assert status["health"]["ready"] is False and status["storage"]["state"] == "failing"
    assert status["storage"]["pending"] >= 2
    assert 'twinspect_fault{component="evidence"} 1.0' in seen["metrics"]
    assert "twinspect_store_backlog " in seen["metrics"] and "twinspect_event_log_queued " in seen["metrics"]
    assert seen["recovery_s"] < 10.0

    stored = _stored(rig)
    assert rig.seen["PartUninspected"] == 0 and rig.seen["Inspected"] == rig.shown == 24
    assert len(stored) == rig.shown and len({row[0] for row in stored}) == rig.shown  # each board once
    assert (backlog.lost, backlog.refused, backlog.reduced, rig.engine.sink.failed) == (0, 0, 0, 0)
    for _, _, _, sha in stored:
        assert rig.store.evidence.exists(sha)
    inspected = [e for e in rig.sync.log.iter_all() if e.type == "part.inspected"]
    entered = [e for e in rig.sync.log.iter_all() if e.type == "part.entered"]
    assert len(inspected) == len(entered) == rig.shown  # nothing the log took was lost
    health = rig.sync.log.health()
    assert (health.lost, health.refused, health.failed, health.failing) == (0, 0, 0, None)
    if rig.disk.mode == "tmpfs":
        db = sqlite3.connect(rig.disk.root / "twinspect.db")
        assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
        db.close()
    print(
        f"\n[disk-full:{rig.disk.mode}] boards {rig.shown}, waiting while full {seen['during']}, "
        f"recovered in {seen['recovery_s']:.2f} s, store retries "
        f"{rig.engine.telemetry.store_retries.labels('evidence')._value.get():.0f}"
    )


def test_beyond_the_backlog_bound_boards_are_stored_uncertain_with_the_reason(make_rig: Callable[..., Rig]):
    rig = make_rig(SinkLimits(store=StoreLimits(max_backlog=2, max_kept=1000)))
    seen = _run_through_a_full_disk(rig)
    backlog = rig.engine.sink.backlog
    stored = _stored(rig)
    assert len(stored) == rig.shown and backlog.lost == backlog.refused == 0
    dropped = [row for row in stored if "evidence image not stored" in row[2]]
    assert len(dropped) == backlog.reduced == seen["during"] - 2 >= 1  # all but the 2 newest gave up their image
    assert all(row[1] == "uncertain" and "the model's verdict was pass" in row[2] for row in dropped)
    assert all(rig.store.evidence.exists(row[3]) for row in dropped)  # a placeholder, never a missing file
    events = [json.loads(e.body)["data"] for e in rig.sync.log.iter_all() if e.type == "part.inspected"]
    assert Counter(e["verdict"] for e in events)["uncertain"] == len(dropped)


def test_beyond_the_kept_bound_boards_are_counted_as_lost(make_rig: Callable[..., Rig]):
    rig = make_rig(SinkLimits(store=StoreLimits(max_backlog=2, max_kept=3)))
    seen = _run_through_a_full_disk(rig)
    backlog = rig.engine.sink.backlog
    stored = _stored(rig)
    assert seen["during"] == 3 and backlog.lost >= 1  # the oldest went once more than 3 waited
    assert len(stored) + backlog.lost == rig.shown  # every board: stored, or counted as lost
    metrics = rig.engine.telemetry.render().decode()
    assert f'twinspect_verdicts_unstored_total{{reason="lost"}} {float(backlog.lost)}' in metrics
