"""The API on a disk that fills up: writes answer 503 with the reason, /readyz says why, both recover (item 3)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.services import Services
from inspection.core.outcome import Outcome
from tests.api.conftest import build_populated_app, dispose
from tests.conftest import wait_until
from tests.faults import SmallDisk, small_disk
from tests.sync.conftest import draft


@dataclass
class FullRig:
    client: TestClient
    services: Services
    disk: SmallDisk
    admin: dict[str, str]

    def item(self, outcome: Outcome) -> str:
        assert self.services.inspections is not None
        return next(x.id for x in self.services.inspections.iterate() if x.outcome is outcome)


@pytest.fixture(params=["tmpfs", "injected"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FullRig]:
    with small_disk(tmp_path / "disk", request.param) as disk:
        app, services, admin = build_populated_app(disk.root, 9)
        assert services.inspections is not None and services.sync is not None
        disk.attach(services.inspections.engine)
        services.sync.log.retry_s = (0.01, 0.05)
        with TestClient(app, raise_server_exceptions=False) as client:  # its lifespan starts the event log
            yield FullRig(client, services, disk, {"Authorization": f"Bearer {admin}"})
        dispose(services)


def test_writes_on_a_full_disk_answer_503_with_the_reason_and_work_again_after(rig: FullRig):
    fail = rig.item(Outcome.FAIL)
    rig.disk.fill()
    confirm = rig.client.post(f"/api/v1/inspections/{fail}/review", json={"action": "confirm"}, headers=rig.admin)
    reject = rig.client.post(f"/api/v1/inspections/{fail}/review", json={"action": "reject"}, headers=rig.admin)
    token = rig.client.post("/api/v1/tokens", json={"role": "qa", "name": "late"}, headers=rig.admin)
    answers = (confirm, reject, token)  # the store's own transaction, the event log's, the token table
    assert [r.status_code for r in answers] == [503, 503, 503]
    for r in answers:
        assert r.json()["error"] == "StorageFullError" and "no space left" in r.json()["detail"]
    detail = rig.client.get(f"/api/v1/inspections/{fail}", headers=rig.admin).json()
    assert detail["review_status"] == "pending" and detail["audit"] == []  # nothing half-written

    rig.disk.free()
    r = rig.client.post(f"/api/v1/inspections/{fail}/review", json={"action": "reject"}, headers=rig.admin)
    assert r.status_code == 200 and r.json()["verdict"] == "pass"
    assert rig.client.post("/api/v1/tokens", json={"role": "qa", "name": "late"}, headers=rig.admin).status_code == 201


def test_readyz_is_503_while_the_event_log_cannot_commit_and_recovers_by_itself(rig: FullRig):
    assert rig.client.get("/readyz").json() == {"ready": True, "faults": [], "models": {}, "cameras": {}}
    assert rig.services.sync is not None
    log = rig.services.sync.log
    rig.disk.fill()
    future = log.publish([draft("part.entered", 1, line="line-1")])
    assert wait_until(lambda: log.health().failing is not None, timeout=10)
    r = rig.client.get("/readyz")
    assert r.status_code == 503 and r.headers["cache-control"] == "no-store"
    assert [f["component"] for f in r.json()["faults"]] == ["event-log"] and "no space left" in r.json()["detail"]
    rig.disk.free()
    assert len(future.result(10)) == 1  # the event was kept and committed once space was back
    assert wait_until(lambda: rig.client.get("/readyz").status_code == 200, timeout=10)


def test_readyz_needs_no_token_and_shows_the_engines_faults(tmp_path: Path):
    from dataclasses import replace

    from api.app import create_app
    from inspection.pipeline.telemetry import Fault

    class FailingEngine:
        def faults(self) -> list[Fault]:
            return [Fault("evidence", "cannot write evidence: no space left", 1.0)]

        def start(self) -> None: ...

        def stop(self) -> None: ...

    _, services, _ = build_populated_app(tmp_path, 3)
    client = TestClient(create_app(replace(services, engine=FailingEngine())))  # type: ignore[arg-type]
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["faults"] == [
        {"component": "evidence", "reason": "cannot write evidence: no space left", "since": 1.0}
    ]
    dispose(services)
