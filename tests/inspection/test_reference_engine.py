"""The engine with a reference model: recipes per board, alignment kept with every verdict, bad setups refused."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from sqlalchemy import text

from inspection.store import open_database
from sync.log import EventLog
from sync.twin import TwinStore
from tests.cli import run_cli
from tests.conftest import make_deeppcb, real_board_subset


def _env(weights: Path) -> dict[str, str]:
    return {"TWINSPECT_MODELS__DEFECT__WEIGHTS": str(weights)}


def test_replay_compares_every_board_with_its_own_golden(reference_model, stored_replay):
    # the suite's shared stored replay (tests/conftest.py) runs the served default, which is this
    # reference model (the fixture checks its card): 6 real boards, each shown twice
    boards, data = stored_replay.boards, stored_replay.data
    summary, per_board = stored_replay.summary, stored_replay.per_board
    assert summary["inspected"] == 12 and summary["alignment"]["score_min"] > 0.85
    assert summary["good_boards"]["alignment_failed"] == summary["defective_boards"]["alignment_failed"] == 0
    templates = {p.name: p for p in boards.rglob("*_temp.jpg")}
    for line in per_board:
        board_id = line["board"].rsplit("_", 1)[0]
        assert line["recipe"] == f"deeppcb-{board_id}"
        golden = templates[f"{board_id}_temp.jpg"].read_bytes()
        assert line["golden_sha256"] == hashlib.sha256(golden).hexdigest()
    db = open_database(f"sqlite:///{data / 'twinspect.db'}")
    with db.connect() as conn:
        rows = conn.execute(text("SELECT recipe, golden_sha256, alignment_score, crop_width FROM inspections")).all()
    assert len(rows) == 12 and all(r[0].startswith("deeppcb-") and len(r[1]) == 64 and r[2] > 0.85 for r in rows)
    assert {r[3] for r in rows} == {640}  # the evidence is the board registered to its 640 px golden
    events = [json.loads(e.body) for e in EventLog(db).iter_all() if e.type == "part.inspected"]
    assert {e["data"]["recipe"] for e in events} == {r[0] for r in rows}
    doc = json.loads(TwinStore(EventLog(db)).document_text("line-1")[1])
    assert doc["features"]["recipe"]["properties"]["lastInspection"]["recipe"].startswith("deeppcb-")
    db.dispose()


def test_replay_of_a_test_list_folder_and_of_one_split(reference_model, tmp_path):
    src = make_deeppcb(tmp_path / "held-out", boards=3, lists=("test.txt",))
    r = run_cli("replay", "--boards", str(src), "--json", "--no-store", env=_env(reference_model))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["summary"]["inspected"] == 6
    r = run_cli("replay", "--boards", str(src), "--list", "trainval", "--no-store", env=_env(reference_model))
    assert r.returncode == 2 and "trainval.txt" in r.stderr
    r = run_cli("replay", "--boards", str(src), "--split", "sideways", "--no-store")
    assert r.returncode == 2 and "--split" in r.stderr


def test_reference_model_setups_that_cannot_work_are_refused(reference_model, plain_model, tmp_path):
    boards = real_board_subset(tmp_path / "boards", 2)
    cfg = tmp_path / "line.yaml"
    cfg.write_text(f"line:\n  recipe: no-such-product\nmodels:\n  defect:\n    weights: {reference_model}\n")
    r = run_cli("replay", "--boards", str(boards), "--config", str(cfg), "--no-store")
    assert r.returncode == 2 and "line.recipe: no recipe 'no-such-product'" in r.stderr
    plain = plain_model  # a plain-image model, whatever is served by default
    cfg.write_text(f"line:\n  recipe: some-product\nmodels:\n  defect:\n    weights: {plain}\n")
    r = run_cli("replay", "--boards", str(boards), "--config", str(cfg), "--no-store")
    assert r.returncode == 2 and "takes 'image' input" in r.stderr
    push = tmp_path / "push.yaml"
    push.write_text(
        f"models:\n  defect:\n    weights: {reference_model}\nline:\n  cameras:\n    - {{type: push, id: cam1}}\n"
    )
    r = run_cli("serve", "--config", str(push), "--data-dir", str(tmp_path / "d"))
    assert r.returncode == 2 and "line.recipe is not set" in r.stderr


def test_a_board_that_cannot_be_aligned_is_stored_uncertain(reference_model, tmp_path):
    """Every board shown against the golden of another product: none passes, each says why."""
    from camera.simulated import BoardPool, SimulatedLine, replay_sequence
    from inspection.inference.models import load_detector
    from inspection.ml.datasets.boards import board_pool
    from inspection.pipeline.engine import Engine, EngineConfig
    from inspection.pipeline.parts import PartsConfig
    from inspection.pipeline.recording import ModelInfo, StoreRecorder
    from inspection.pipeline.reference_stage import ReferenceStage
    from inspection.pipeline.trigger import LineTriggerConfig
    from inspection.reference.recipes import StaticGoldenBook, golden_from_image
    from inspection.store import EvidenceStore, InspectionStore
    from tests.conftest import REPO

    shown = board_pool(real_board_subset(tmp_path / "boards", 2))
    # the camera names no product (a real camera): every board is compared with the line's recipe
    pool = BoardPool(
        tuple(replace(s, product=None) for s in shown.defective), tuple(replace(s, product=None) for s in shown.good)
    )
    other = golden_from_image("other", "ef" * 32, np.full((640, 640), 30, np.uint8))
    stage = ReferenceStage(StaticGoldenBook({"other": other}), "other")
    line = SimulatedLine("cam1", pool, sequence=replay_sequence(pool, 0.5), realtime=False)
    evidence = EvidenceStore(tmp_path / "evidence")
    store = InspectionStore(open_database(f"sqlite:///{tmp_path / 'db.sqlite'}"), evidence)
    part = load_detector(REPO / "weights" / "part-yolov8n", conf=0.4)
    defect = load_detector(reference_model, conf=0.25)
    trigger = LineTriggerConfig(start=(640.0, 0.0), end=(640.0, 720.0), direction="right_to_left")
    engine = Engine(
        EngineConfig(parts=PartsConfig(trigger=trigger)),
        [line],
        part,
        defect,
        ModelInfo("ref", "1"),
        evidence=evidence,
        recorder=StoreRecorder(store),
        reference=stage,
    )
    engine.start()
    assert engine.wait(timeout=300)
    engine.stop()
    stored = store.list(limit=10).items
    assert len(stored) == 4 and engine.status().verdicts["pass"] == 0
    for s in stored:
        assert s.outcome.value == "uncertain" and s.reasons[0].startswith("uncertain: alignment failed (score")
        assert s.recipe == "other" and s.golden_sha256 == "ef" * 32
