"""line.recipe_changed and the golden-reference fields of part.inspected: schemas, recorder, twin, hub copy."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace

import jsonschema_rs
import numpy as np

from inspection.core.detections import Detections
from inspection.core.outcome import Outcome
from inspection.pipeline.events import Inspected
from inspection.pipeline.recording import ModelInfo
from inspection.pipeline.verdict import ReferenceInfo, Verdict
from sync.drafts import line_recipe_changed
from sync.events import Draft, Event, check_type, dumps
from sync.hub_store import inspection_record
from sync.log import EventLog
from sync.recorder import EngineRecorder
from sync.schemas import event_schema
from sync.twin import TwinStore, apply, document, new_state
from tests.sync.conftest import draft

MakeLog = Callable[[], tuple[EventLog, TwinStore]]
SHA_A, SHA_B = "a" * 64, "b" * 64


def _verdict(reference: ReferenceInfo | None) -> Verdict:
    dets = Detections(np.array([[1, 2, 30, 40]], np.float32), np.array([0.9], np.float32), np.array([0]), ("open",))
    return Verdict(
        part_id="run-cam1-3-10",
        camera_id="cam1",
        track_id=3,
        outcome=Outcome.FAIL,
        defects=dets,
        crop=np.zeros((64, 64, 3), np.uint8),
        board_xyxy=np.array([0, 0, 64, 64], np.float32),
        frame_seq=10,
        t_capture=1.0,
        reasons=("open 0.90",),
        reference=reference,
    )


def _recorder(log: EventLog, twins: TwinStore) -> EngineRecorder:
    return EngineRecorder(log, twins, "line-1", "edge-1", {"defect": ModelInfo("defect-ref", "2")})


def _valid(kind: str, body: dict[str, object]) -> list[str]:
    return [str(e) for e in jsonschema_rs.validator_for(event_schema(kind)).iter_errors(body)]


def test_part_inspected_carries_the_recipe_golden_and_alignment_score(make_log: MakeLog):
    log, twins = make_log()
    rec = _recorder(log, twins)
    done = Inspected(_verdict(ReferenceInfo("pcb-a", SHA_A, 0.93456, True)), None, 3, 0.05, 1_790_000_000.0)
    body = rec.inspected_draft(done, None).envelope(1)
    assert {k: body["data"][k] for k in ("recipe", "golden_sha256", "alignment_score")} == {
        "recipe": "pcb-a",
        "golden_sha256": SHA_A,
        "alignment_score": 0.9346,
    }
    assert _valid("part.inspected", json.loads(dumps(body))) == []
    failed = rec.inspected_draft(
        replace(done, verdict=_verdict(ReferenceInfo("pcb-a", SHA_A, math.nan, False))), None
    ).envelope(2)
    assert failed["data"]["alignment_score"] is None and "NaN" not in dumps(failed)  # never invalid JSON
    plain = rec.inspected_draft(replace(done, verdict=_verdict(None)), None).envelope(3)
    assert (plain["data"]["recipe"], plain["data"]["golden_sha256"], plain["data"]["alignment_score"]) == (
        None,
        None,
        None,
    )
    assert _valid("part.inspected", json.loads(dumps(plain))) == []
    assert _valid("part.inspected", {**body, "data": {**body["data"], "golden_sha256": "not-a-sha"}}) != []


def test_line_recipe_changed_validates_and_the_twin_shows_recipe_and_golden(make_log: MakeLog):
    log, twins = make_log()
    change = line_recipe_changed("line-1", "/twinspect/edge-1", "pcb-a", None, SHA_A, "ml-eng")
    assert _valid("line.recipe_changed", change.envelope(1)) == []
    assert _valid("line.recipe_changed", {**change.envelope(1), "data": {"line_id": "line-1"}}) != []
    inspected = draft("part.inspected", 1, verdict="fail", recipe="pcb-a", golden_sha256=SHA_A, alignment_score=0.91)
    log.append([change, inspected])
    recipe = json.loads(twins.document_text("line-1")[1])["features"]["recipe"]["properties"]
    assert (recipe["name"], recipe["goldenSha256"], recipe["changedBy"], recipe["previous"]) == (
        "pcb-a",
        SHA_A,
        "ml-eng",
        None,
    )
    assert recipe["lastInspection"] == {
        "partId": "p1",
        "recipe": "pcb-a",
        "goldenSha256": SHA_A,
        "alignmentScore": 0.91,
        "time": inspected.time,
    }
    items = json.loads(twins.document_text("line-1")[1])["features"]["recentParts"]["properties"]["items"]
    assert items[0]["recipe"] == "pcb-a"
    assert twins.line_recipe("line-1") == ("pcb-a", SHA_A) and twins.line_recipe("line-9") == (None, None)
    log.append([line_recipe_changed("line-1", "/twinspect/edge-1", None, "pcb-a", None, "ml-eng")])
    assert twins.line_recipe("line-1") == (None, None)
    _, replayed = make_log()  # the twin is a function of the log: a replay gives the same bytes
    assert replayed.document_text("line-1") == twins.document_text("line-1")


def test_a_twin_state_from_before_recipes_still_folds_new_events():
    state = new_state("line-1")
    del state["recipe"]  # a retention snapshot written by an older twinspect
    apply(state, draft("part.inspected", 1, recipe="pcb-a", golden_sha256=SHA_A).envelope(1), 1)
    apply(state, line_recipe_changed("line-1", "/s", "pcb-b", None, SHA_B, "config").envelope(2), 2)
    props = document(state)["features"]["recipe"]["properties"]
    assert (props["name"], props["goldenSha256"], props["lastInspection"]["recipe"]) == ("pcb-b", SHA_B, "pcb-a")


def test_the_recorder_announces_the_configured_recipe_only_when_it_differs(make_log: MakeLog):
    log, twins = make_log()
    rec = _recorder(log, twins)
    log.start()
    try:
        assert rec.announce_recipe("pcb-a", SHA_A) is True
        assert log.flush(10)
        assert rec.announce_recipe("pcb-a", SHA_A) is False  # a restart with the same recipe: nothing
        assert rec.announce_recipe("pcb-a", SHA_B) is True  # the recipe's golden was replaced meanwhile
        assert log.flush(10)
        assert rec.announce_recipe(None, None) is True  # the config no longer names one
        assert log.flush(10)
        assert rec.announce_recipe(None, None) is False
    finally:
        log.stop()
    events = [e.cloudevent()["data"] for e in log.iter_all() if e.type == "line.recipe_changed"]
    assert [(d["recipe"], d["previous"], d["golden_sha256"], d["changed_by"]) for d in events] == [
        ("pcb-a", None, SHA_A, "config"),
        ("pcb-a", "pcb-a", SHA_B, "config"),
        (None, "pcb-a", None, "config"),
    ]
    assert twins.line_recipe("line-1") == (None, None)


def test_the_hub_copy_of_an_inspection_keeps_its_golden():
    body = draft(
        "part.inspected",
        4,
        verdict="fail",
        recipe="pcb-a",
        golden_sha256=SHA_A,
        alignment_score=0.88,
        evidence_sha256=SHA_B,
        crop={"width": 64, "height": 48},
    ).envelope(1)
    rec = inspection_record(Event.from_body(dumps(body)))
    assert rec is not None and (rec.recipe, rec.golden_sha256, rec.alignment_score) == ("pcb-a", SHA_A, 0.88)
    old = draft("part.inspected", 5, evidence_sha256=SHA_B, crop={"width": 64, "height": 48})  # an older edge
    rec = inspection_record(Event.from_body(dumps(old.envelope(2))))
    assert rec is not None and (rec.recipe, rec.golden_sha256, rec.alignment_score) == (None, None, None)


def test_the_new_type_is_known_to_every_consumer_of_the_log():
    body = Draft("line.recipe_changed", "line-1", "/s", {}).envelope(1)
    assert Event.from_body(dumps(body)).type == "line.recipe_changed"  # the hub ingests it from its edges
    assert check_type("io.twinspect.line.recipe_changed") == "line.recipe_changed"
