"""Delivering the part model (the one that finds the boards): gated on its own validation split and export
parity, hot swapped in a running line without losing a board, rolled back; no shadow runs; the defect
model's states and history are left alone."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from api.model_desk import DeskParts, ModelDesk
from api.model_gate import line_gate
from api.model_runtime import build_desk, served_settings
from api.runtime import build_engine
from camera.simulated import replay_sequence
from inspection.core.errors import ModelError
from inspection.ml.datasets.boards import board_pool
from inspection.ml.datasets.synthline import synth_line_dataset
from inspection.pipeline.events import EngineEvent, Inspected
from inspection.store import ModelStates, Version, open_database
from tests.api.conftest import Populated
from tests.api.test_model_delivery import add_version
from tests.api.test_model_hot_swap import HeldPartModel, line_settings, run_to_the_end
from tests.api.test_models_api import URL
from tests.cli import run_cli
from tests.conftest import REPO, real_board_subset

PART = REPO / "weights" / "part-yolov8n-v2"
P2, P3 = Version("part-yolov8n", 2), Version("part-yolov8n", 3)
D1 = Version("defect-yolov8n", 1)


def add_part_version(registry: Path, version: int) -> Path:
    """A registry entry: the shipped part network (linked, not copied) under a card of ``version``."""
    folder = registry / f"part-yolov8n-v{version}"
    folder.mkdir(parents=True)
    for name in ("model.onnx", "model.pt"):
        (folder / name).symlink_to(PART / name)
    card = json.loads((PART / "card.json").read_text())
    card.update({"version": version})
    (folder / "card.json").write_text(json.dumps(card))
    return folder


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_board_subset(tmp_path_factory.mktemp("boards"), 6, offset=40)


@pytest.fixture(scope="module")
def part_val(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic line validation split (rendered as the part model's training data was)."""
    root = tmp_path_factory.mktemp("synth")
    src = real_board_subset(root / "boards", 12, offset=0)
    synth_line_dataset(src, root / "ds", train=0, val=4, test=0, seed=3)
    return root / "ds" / "data.yaml"


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    reg = tmp_path / "weights"
    add_version(reg, 1)
    add_part_version(reg, 2)
    add_part_version(reg, 3)
    return reg


def test_a_part_model_is_promoted_through_its_gate_and_swapped_in_a_running_line_without_losing_a_board(
    tmp_path, boards, part_val, registry
):
    settings = line_settings(tmp_path, boards, registry)
    part = settings.models.part.model_copy(update={"weights": registry / "part-yolov8n-v2"})
    settings = settings.model_copy(update={"models": settings.models.model_copy(update={"part": part})})
    db = open_database(f"sqlite:///{tmp_path / 'states.db'}")
    states = ModelStates(db)
    engine = build_engine(served_settings(settings, states), store=False)
    defect_desk = build_desk(settings, engine, None, states)
    desk = build_desk(settings, engine, None, states, role="part")
    assert desk.active() == P2 and engine.part_model is not None and engine.part_model.version == "2"
    assert defect_desk.active() == D1 and {v.name for v in (desk.active(), defect_desk.active())} == {
        "part-yolov8n",
        "defect-yolov8n",
    }
    with pytest.raises(ModelError, match="only the defect model runs in shadow"):
        desk.start_shadow(P3, "ml", "beside v2")
    with pytest.raises(ModelError, match="classes"):  # a defect model cannot find boards
        desk.activate(D1, "ml", "wrong role")
    assert desk.active() == P2 and engine.part_model.version == "2"

    asked, swapped = threading.Event(), threading.Event()
    engine.part_worker.detector = HeldPartModel(engine.part_worker.detector, asked, swapped)
    verdicts: list[str] = []
    gates: list[object] = []

    def promote() -> None:
        try:
            gates.append(desk.promote(P3, "ml", "new part model", line_gate(desk.parts, None, part_val), False))
        finally:
            swapped.set()

    def listen(event: EngineEvent) -> None:
        if isinstance(event, Inspected):
            verdicts.append(event.verdict.part_id)
            if len(verdicts) == 3:
                asked.set()
                threading.Thread(target=promote).start()

    run_to_the_end(engine, listen)
    assert swapped.wait(60) and len(gates) == 1, "the promotion did not finish"

    result = gates[0]
    assert result.passed, result.table()  # type: ignore[attr-defined]
    metrics = [r["metric"] for r in result.rows]  # type: ignore[attr-defined]
    assert "onnx vs pt: box diff px" in metrics and "val map50" in metrics and "val recall board" in metrics
    assert any("QA reviews defects" in n for n in result.notes)  # type: ignore[attr-defined]
    shown = len(replay_sequence(board_pool(boards), 0.5, seed=0))
    counts = engine.loops[0].parts.counters
    assert counts.seen == shown == 12 and counts.inspected == shown and counts.uninspected == 0
    assert len(verdicts) == shown and len(set(verdicts)) == shown  # every board once, none twice
    assert desk.active() == P3 and engine.part_model.version == "3"
    assert [c.action for c in desk.changes()][:1] == ["activated"] and desk.changes()[0].previous == "part-yolov8n:2"
    assert defect_desk.active() == D1 and all(c.role == "defect" for c in defect_desk.changes())

    back = desk.rollback("ml", "boards merge on the new one")
    assert back.model == P2 and desk.active() == P2 and engine.part_model.version == "2"
    assert defect_desk.active() == D1 and engine.defect_model.version == "1"
    db.dispose()


def test_the_cli_picks_the_desk_by_the_card_and_rolls_back_a_role(tmp_path, part_val, registry):
    common = ["--data-dir", str(tmp_path / "data"), "--weights-dir", str(registry), "--line", "line-1"]
    assert run_cli("models", "activate", "part-yolov8n:2", *common).returncode == 0
    assert run_cli("models", "activate", "defect-yolov8n:1", *common).returncode == 0
    r = run_cli("models", "promote", "part-yolov8n:3", "--data", str(part_val), *common)
    assert r.returncode == 0, r.stderr
    assert "val map50" in r.stdout and "promoted" in r.stdout and "FORCED" not in r.stdout
    r = run_cli("models", "status", "--role", "part", "--json", *common)
    states = {v["version"]: v["state"] for v in json.loads(r.stdout)["versions"]}
    assert states == {2: "retired", 3: "active"}, r.stdout
    r = run_cli("models", "shadow", "part-yolov8n:2", *common)
    assert r.returncode == 2 and "only the defect model runs in shadow" in r.stderr
    r = run_cli("models", "rollback", *common)  # the defect model: never replaced on this line
    assert r.returncode == 2 and "no previous defect model" in r.stderr
    r = run_cli("models", "rollback", "--role", "part", *common)
    assert r.returncode == 0 and "part-yolov8n:2 active again (was part-yolov8n:3)" in r.stdout, r.stderr
    r = run_cli("models", "history", *common)
    assert "part   rolled_back" in r.stdout and "defect activated" in r.stdout, r.stdout


def test_the_api_routes_a_part_model_to_its_desk(populated: Populated, tmp_path, registry, part_val):
    """POST .../promote with a part model gates it on its own split; GET ...?role=part shows it; rollback by role."""
    states = ModelStates(populated.sync.log.engine)
    desks = {}
    for role, data in (("defect", tmp_path / "none.yaml"), ("part", part_val)):
        parts = DeskParts(registry, "line-1", "edge-test", role=role, sync=populated.sync, gate_data=data)
        desks[role] = ModelDesk(states, parts)
    desks["defect"].start_line(D1)
    desks["part"].start_line(P2)
    populated.services.model_desk, populated.services.part_desk = desks["defect"], desks["part"]
    c, ml = populated.client, populated.as_("ml")

    r = c.post(URL + "/promote", json={"model": "part-yolov8n:3", "reason": "new part model"}, headers=ml)
    assert r.status_code == 200, r.text
    assert r.json()["change"]["role"] == "part" and r.json()["gate"]["passed"] is True
    part = c.get(URL + "?role=part", headers=ml).json()
    assert part["role"] == "part" and part["active"] == "part-yolov8n:3"
    assert {h["role"] for h in part["history"]} == {"part"}
    defect = c.get(URL, headers=ml).json()
    assert defect["active"] == "defect-yolov8n:1" and {h["role"] for h in defect["history"]} == {"defect"}
    r = c.post(URL + "/shadow", json={"model": "part-yolov8n:2"}, headers=ml)
    assert 400 <= r.status_code < 500 and "only the defect model runs in shadow" in r.text
    r = c.post(URL + "/rollback", json={"role": "part", "reason": "boards merge"}, headers=ml)
    assert r.status_code == 200 and r.json()["change"]["model"] == "part-yolov8n:2", r.text
    r = c.post(URL + "/rollback", json={"role": "camera"}, headers=ml)
    assert r.status_code == 422
    assert c.get(URL + "?role=part", headers=ml).json()["active"] == "part-yolov8n:2"
    models = {m["role"]: m for m in c.get("/api/v1/models", headers=ml).json()["models"]}
    assert models["part"]["version"] == "2" and models["defect"]["version"] == "1"
