"""Model delivery on a line: states, history, rollback, refusals, the promotion lock, events and the twin."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from api.model_desk import DeskParts, GateRefused, ModelDesk
from inspection.core.errors import ModelError
from inspection.ml.gate import GateResult
from inspection.store import ModelStates, Version, open_database
from sync.config import SyncSettings
from sync.schemas import DATA_MODELS
from sync.service import SyncService
from tests.conftest import REPO, plain_model_dir

pytestmark = pytest.mark.usefixtures("plain_model")  # v1's fp32 ONNX file, exported once

SHIPPED = REPO / "weights" / "defect-yolov8n-v1"


def add_version(registry: Path, version: int, name: str = "defect-yolov8n", **card_changes: object) -> Path:
    """A registry entry: the shipped defect network (linked, not copied) under a card of ``version``."""
    plain_model_dir()  # SHIPPED's fp32 ONNX file, exported once
    folder = registry / f"{name}-v{version}"
    folder.mkdir(parents=True)
    (folder / "model.onnx").symlink_to(SHIPPED / "model.onnx")
    card = json.loads((SHIPPED / "card.json").read_text())
    card.update({"name": name, "version": version, **card_changes})
    (folder / "card.json").write_text(json.dumps(card))
    return folder


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    reg = tmp_path / "weights"
    for v in (1, 2, 3):
        add_version(reg, v)
    return reg


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield engine
    engine.dispose()


def desk_on(db, registry: Path, sync: SyncService | None = None) -> ModelDesk:  # type: ignore[no-untyped-def]
    return ModelDesk(ModelStates(db), DeskParts(registry, "line-1", sync=sync))


V1, V2, V3 = (Version("defect-yolov8n", v) for v in (1, 2, 3))


def test_registry_versions_are_registered_per_line_and_activation_keeps_a_history(db, registry):
    desk = desk_on(db, registry)
    assert desk.sync_registry() == [V1, V2, V3]
    assert desk.sync_registry() == []  # once
    assert {r["version"]: r["state"] for r in desk.listing()} == {1: "registered", 2: "registered", 3: "registered"}
    desk.activate(V1, "config", "first start")
    change = desk.activate(V2, "ml-anna", "better F on the new boards")
    assert (change.previous, change.who, change.why, change.action) == (
        "defect-yolov8n:1",
        "ml-anna",
        "better F on the new boards",
        "activated",
    )
    assert {r["version"]: r["state"] for r in desk.listing()} == {1: "retired", 2: "active", 3: "registered"}
    other = ModelDesk(ModelStates(db), DeskParts(registry, "line-2"))
    other.sync_registry()
    assert other.active() is None  # states are per line


def test_rollback_walks_back_the_activations_and_refuses_with_no_previous(db, registry):
    desk = desk_on(db, registry)
    with pytest.raises(ModelError, match="no previous defect model"):
        desk.rollback("ml", "nothing yet")
    desk.activate(V1, "config", "start")
    with pytest.raises(ModelError, match="no previous defect model to roll back to \\(active: defect-yolov8n:1"):
        desk.rollback("ml", "only one")
    desk.activate(V2, "ml", "v2")
    desk.activate(V3, "ml", "v3")
    assert desk.rollback("ml", "v3 rejects too much").model == V2
    assert desk.rollback("ml", "v2 too").model == V1
    with pytest.raises(ModelError):
        desk.rollback("ml", "no more")
    assert desk.active() == V1
    actions = [c.action for c in desk.states.history("line-1") if c.action != "registered"]
    assert actions == ["rolled_back", "rolled_back", "activated", "activated", "activated"]


def test_bad_versions_are_refused_and_nothing_changes(db, registry):
    desk = desk_on(db, registry)
    desk.activate(V1, "config", "start")
    add_version(registry, 4, class_names=["open", "short"])
    add_version(registry, 5, input="reference")
    broken = add_version(registry, 6)
    (broken / "model.onnx").unlink()
    (broken / "model.onnx").write_bytes(b"\x08\x01not an onnx graph at all")
    before = desk.states.history("line-1")
    with pytest.raises(ModelError, match="no such registered model version.*registered: defect-yolov8n:1"):
        desk.activate(Version("defect-yolov8n", 9), "ml", "typo")
    with pytest.raises(ModelError, match="classes"):
        desk.activate(Version("defect-yolov8n", 4), "ml", "other classes")
    with pytest.raises(ModelError, match="'reference' input"):
        desk.activate(Version("defect-yolov8n", 5), "ml", "other input")
    with pytest.raises(ModelError, match="not an ONNX model"):
        desk.activate(Version("defect-yolov8n", 6), "ml", "corrupt")
    with pytest.raises(ModelError, match="not an ONNX model"):
        desk.start_shadow(Version("defect-yolov8n", 6), "ml", "corrupt")
    assert desk.active() == V1 and desk.shadow() is None
    after = [c for c in desk.states.history("line-1") if c.action != "registered"]
    assert after == [c for c in before if c.action != "registered"]


class FakeGate:
    def __init__(self, passed: bool, wait: threading.Event | None = None) -> None:
        self.passed, self.wait, self.calls = passed, wait, 0
        self.entered = threading.Event()

    def __call__(self, candidate: Path, active: Path | None) -> GateResult:
        self.calls += 1
        self.entered.set()
        if self.wait is not None:
            self.wait.wait(10)
        result = GateResult(candidate.name, active.name if active else None)
        result.add("val deeppcb_fscore", 0.86, 0.9 if self.passed else 0.5, ">= active - 0.0", self.passed)
        return result


def test_promotion_is_gated_forced_promotions_are_audited(db, registry):
    desk = desk_on(db, registry)
    desk.activate(V1, "config", "start")
    with pytest.raises(GateRefused, match="the gate refused it: val deeppcb_fscore: 0.5") as refused:
        desk.promote(V2, "ml", "try", FakeGate(False), force=False)
    assert refused.value.result.rows[0]["ok"] is False
    assert desk.active() == V1
    desk.promote(V2, "admin", "line down, known good on the new product", FakeGate(False), force=True)
    last = desk.states.history("line-1", 1)[0]
    assert (last.model, last.forced, last.who) == (V2, True, "admin")
    assert last.detail["gate"]["passed"] is False
    desk.promote(V3, "ml", "passes", FakeGate(True), force=False)
    assert desk.active() == V3 and not desk.states.history("line-1", 1)[0].forced


def test_two_promotions_at_once_the_second_is_refused(db, registry):
    from api.errors import Conflict

    desk = desk_on(db, registry)
    desk.activate(V1, "config", "start")
    release = threading.Event()
    slow = FakeGate(True, release)
    first = threading.Thread(target=desk.promote, args=(V2, "ml-1", "first", slow, False))
    first.start()
    assert slow.entered.wait(10)
    second = desk_on(db, registry)  # another process on the same database
    with pytest.raises(Conflict, match="a promotion by ml-1 is under way"):
        second.promote(V3, "ml-2", "second", FakeGate(True), force=False)
    release.set()
    first.join(10)
    assert desk.active() == V2
    second.promote(V3, "ml-2", "after", FakeGate(True), force=False)  # the lock was released
    assert desk.active() == V3


def test_changes_are_announced_once_as_typed_events_and_the_twin_shows_active_and_shadow(db, registry):
    sync = SyncService.open(db, SyncSettings(), forwarders=False)
    desk = desk_on(db, registry, sync)
    desk.start_line(V1)
    cli = desk_on(db, registry)  # the CLI: changes the database, has no event log
    cli.activate(V2, "cli:anna", "v2 please")
    cli.start_shadow(V3, "cli:anna", "watch v3")
    cli.rollback("cli:anna", "back")
    desk.reconcile()
    desk.reconcile()  # nothing twice
    events = [json.loads(e.body) for e in sync.log.read(0, 1000) if e.type.startswith("model.")]
    kinds = [e["type"].removeprefix("io.twinspect.") for e in events]
    assert kinds == [
        "model.registered",
        "model.registered",
        "model.registered",
        "model.activated",
        "model.activated",
        "model.shadow_started",
        "model.rolled_back",
    ]
    for e, kind in zip(events, kinds, strict=True):
        DATA_MODELS[kind].model_validate(e["data"])
    activated = events[4]["data"]
    assert activated["previous"] == "defect-yolov8n:1" and activated["changed_by"] == "cli:anna"
    assert events[6]["data"]["previous"] == "defect-yolov8n:2" and events[6]["data"]["version"] == "1"
    twin = json.loads(sync.twins.document_text("line-1")[1])["features"]
    assert twin["models"]["properties"]["defect"]["version"] == "1"
    assert twin["shadowModels"]["properties"]["defect"]["version"] == "3"


def test_the_latest_decision_picks_the_version_a_line_starts_with(db, registry):
    import os
    import time

    from api.model_runtime import served_settings
    from api.settings import Settings

    pointer = registry / "defect-yolov8n"
    pointer.write_text("defect-yolov8n-v1\n")
    os.utime(pointer, (time.time() - 60, time.time() - 60))
    base = Settings()
    defect = base.models.defect.model_copy(update={"weights": pointer})
    settings = base.model_copy(update={"models": base.models.model_copy(update={"defect": defect})})
    states = ModelStates(db)

    def served() -> str:
        return Path(served_settings(settings, states).models.defect.weights).name

    assert served() == "defect-yolov8n"  # no history: the configured pointer (v1)
    ModelDesk(states, DeskParts(registry, "line-1")).activate(V2, "cli:anna", "v2 on this line")
    assert served() == "defect-yolov8n-v2"  # the line's history is newer than the pointer
    pointer.write_text("defect-yolov8n-v3\n")  # twinspect models activate defect-yolov8n:3 (the pointer moved)
    assert served() == "defect-yolov8n"  # the latest decision: the config's v3
