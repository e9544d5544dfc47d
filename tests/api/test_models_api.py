"""/api/v1/models/lines/{line}: read with qa or ml, change with ml, force with admin; refusals with their reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.model_desk import DeskParts, ModelDesk
from inspection.ml.gate import GateConfig
from inspection.store import ModelStates, Version
from tests.api.conftest import Populated
from tests.api.test_model_delivery import add_version

URL = "/api/v1/models/lines/line-1"


@pytest.fixture
def desk(populated: Populated, tmp_path: Path) -> ModelDesk:
    registry = tmp_path / "weights"
    for v in (1, 2):
        add_version(registry, v)
    gate = GateConfig(parity_images=0)  # no dataset here: the val split row fails, the gate refuses
    parts = DeskParts(registry, "line-1", "edge-test", sync=populated.sync, gate=gate, gate_data=tmp_path / "none.yaml")
    desk = ModelDesk(ModelStates(populated.sync.log.engine), parts)
    desk.start_line(Version("defect-yolov8n", 1))
    populated.services.model_desk = desk
    return desk


def test_reading_needs_qa_or_ml_and_changing_needs_ml(populated: Populated, desk: ModelDesk):
    c = populated.client
    for role in ("qa", "ml", "admin"):
        r = c.get(URL, headers=populated.as_(role))
        assert r.status_code == 200, r.text
    body = r.json()
    assert body["active"] == "defect-yolov8n:1" and body["shadow"] is None
    assert {(v["version"], v["state"]) for v in body["versions"]} == {(1, "active"), (2, "registered")}
    assert body["history"][0]["action"] == "activated" and body["history"][0]["who"] == "config"
    assert c.get(URL, headers=populated.as_("camera")).status_code == 403
    assert c.get(URL).status_code == 401
    for path, payload in (
        ("/shadow", {"model": "defect-yolov8n:2"}),
        ("/rollback", {}),
        ("/promote", {"model": "defect-yolov8n:2"}),
    ):
        r = c.post(URL + path, json=payload, headers=populated.as_("qa"))
        assert r.status_code == 403 and "ml" in r.json()["detail"]


def test_refusals_name_their_reason_and_change_nothing(populated: Populated, desk: ModelDesk):
    c, ml = populated.client, populated.as_("ml")
    r = c.post(URL + "/rollback", json={"reason": "bad"}, headers=ml)
    assert r.status_code == 422 and "no previous defect model" in r.json()["detail"]
    r = c.post(URL + "/promote", json={"model": "defect-yolov8n:7"}, headers=ml)
    assert r.status_code == 422 and "registered: defect-yolov8n:1, defect-yolov8n:2" in r.json()["detail"]
    r = c.post(URL + "/promote", json={"model": "not a ref"}, headers=ml)
    assert r.status_code == 422
    r = c.post(URL + "/promote", json={"model": "defect-yolov8n:2", "force": True}, headers=ml)
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    r = c.post(URL + "/promote", json={"model": "defect-yolov8n:2"}, headers=ml)
    assert r.status_code == 409 and r.json()["error"] == "GateRefused"
    rows = r.json()["gate"]["rows"]
    assert rows and rows[0]["metric"] == "val split" and rows[0]["ok"] is False
    assert c.get("/api/v1/models/lines/line-9", headers=ml).status_code == 404
    assert desk.active() == Version("defect-yolov8n", 1)


def test_shadow_then_a_forced_promotion_by_admin_is_audited_and_rollback_returns(populated: Populated, desk: ModelDesk):
    c = populated.client
    r = c.post(URL + "/shadow", json={"model": "defect-yolov8n:2", "reason": "watch it"}, headers=populated.as_("ml"))
    assert r.status_code == 200 and r.json()["change"]["action"] == "shadow_started"
    assert c.get(URL, headers=populated.as_("qa")).json()["shadow"] == "defect-yolov8n:2"
    r = c.post(
        URL + "/promote",
        json={"model": "defect-yolov8n:2", "force": True, "reason": "urgent"},
        headers=populated.as_("admin"),
    )
    assert r.status_code == 200, r.text
    change = r.json()["change"]
    assert change["forced"] is True and change["previous"] == "defect-yolov8n:1" and change["why"] == "urgent"
    assert r.json()["gate"]["passed"] is False
    twin = c.get("/api/v1/twin/line-1", headers=populated.as_("twin")).json()
    assert twin["features"]["models"]["properties"]["defect"]["version"] == "2"
    assert twin["features"]["shadowModels"]["properties"] == {}  # the shadow was promoted
    r = c.post(URL + "/rollback", json={"reason": "rejects too much"}, headers=populated.as_("ml"))
    assert r.status_code == 200 and r.json()["change"]["model"] == "defect-yolov8n:1"
    assert c.get(URL, headers=populated.as_("ml")).json()["active"] == "defect-yolov8n:1"
