"""Shadow runs: off the critical path (never waits, drops and counts under load), stored apart, scored vs review."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np

from inspection.core.classes import DEEPPCB_CLASSES
from inspection.core.detections import Detections
from inspection.pipeline.events import ModelInfo
from inspection.pipeline.parts import InspectRequest
from inspection.pipeline.rules import RulesConfig
from inspection.pipeline.shadow import ShadowConfig, ShadowRunner
from inspection.store import ModelStates, Version
from tests.api.conftest import Populated, outcome_of
from tests.api.test_models_api import URL, desk  # noqa: F401 - the fixture


class Gated:
    """A detector that finds one clear 'short' on each board, after the gate opens."""

    class_names = DEEPPCB_CLASSES
    imgsz = (64, 64)
    provider = "test"

    def __init__(self) -> None:
        self.gate = threading.Event()

    def detect(self, images: list[np.ndarray]) -> list[Detections]:
        self.gate.wait(10)
        one = Detections(
            np.array([[1, 1, 30, 30]], np.float32), np.array([0.9], np.float32), np.ones(1, np.int64), DEEPPCB_CLASSES
        )
        return [one for _ in images]


def request(i: int) -> InspectRequest:
    crop = np.zeros((64, 64, 3), np.uint8)
    box = np.array([0, 0, 64, 64], np.float32)
    return InspectRequest(f"part-{i}", "cam1", i, crop, box, box.astype(np.int64), i, time.monotonic(), time.time())


def test_offers_never_wait_under_load_the_shadow_drops_and_counts_and_stores_apart():
    rows: list[dict] = []
    detector = Gated()
    runner = ShadowRunner(
        detector, ModelInfo("cand", "2"), RulesConfig(), "line-1", rows.extend, ShadowConfig(max_queue=4, max_batch=2)
    ).start()
    t0 = time.monotonic()
    for i in range(40):  # the shadow model is stuck: its queue fills, the rest is dropped
        runner.offer(request(i), np.zeros((64, 64, 3), np.uint8), None)
    offered_s = time.monotonic() - t0
    assert offered_s < 0.5  # never waits for the shadow model
    detector.gate.set()
    runner.stop()
    f = runner.figures()
    assert f["offered"] == 40 and f["dropped"] > 0 and f["run"] + f["dropped"] == 40 and f["failed"] == 0
    assert f["stored"] == f["run"] == len(rows)
    assert {r["outcome"] for r in rows} == {"fail"} and rows[0]["boxes"][0]["class_name"] == "short"
    assert {(r["name"], r["version"], r["line_id"]) for r in rows} == {("cand", 2, "line-1")}


def test_a_sample_runs_the_shadow_on_every_kth_board():
    rows: list[dict] = []
    detector = Gated()
    detector.gate.set()
    runner = ShadowRunner(
        detector, ModelInfo("cand", "2"), RulesConfig(), "line-1", rows.extend, ShadowConfig(sample=0.25)
    ).start()
    for i in range(40):
        runner.offer(request(i), np.zeros((64, 64, 3), np.uint8), None)
        time.sleep(0.002)
    runner.stop()
    assert runner.skipped == 30 and runner.run == 10 and len(rows) == 10


def test_the_shadow_report_compares_both_models_with_reviewed_truth(populated: Populated, desk):  # noqa: F811
    c = populated.client
    desk.start_shadow(Version("defect-yolov8n", 2), "ml", "watch")
    line1 = [i for i in range(populated.n) if i % 2 == 0]
    rows = [
        {
            "line_id": "line-1",
            "part_id": part_id(i),
            "name": "defect-yolov8n",
            "version": 2,
            "outcome": "pass",
            "boxes": [],
        }
        for i in line1
    ]
    ModelStates(populated.sync.log.engine).add_shadow_verdicts(rows)
    fail_kept, fail_rejected = 4, 10  # both failed by the active model; QA confirms one and rejects the other
    for i, action in ((fail_kept, "confirm"), (fail_rejected, "reject")):
        r = c.post(
            f"/api/v1/inspections/{uuid.UUID(int=i + 1)}/review", json={"action": action}, headers=populated.as_("qa")
        )
        assert r.status_code == 200, r.text
    r = c.get(URL + "/shadow-report", headers=populated.as_("qa"))
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["shadow"] == "defect-yolov8n:2" and rep["active"] == "defect-yolov8n:1"
    assert rep["boards"] == len(line1) and rep["reviewed"] == 2
    assert rep["disagreements"] == sum(outcome_of(i).value != "pass" for i in line1)
    active, shadow = rep["models"]["active"], rep["models"]["shadow"]
    assert (active["missed"], active["false_rejects"]) == (0, 1)
    assert (shadow["missed"], shadow["false_rejects"]) == (1, 0)
    assert shadow["missed_ids"] == [str(uuid.UUID(int=fail_kept + 1))]
    assert active["false_reject_ids"] == [str(uuid.UUID(int=fail_rejected + 1))]
    assert set(shadow["class_recall"]) == set(active["class_recall"]) and all(
        v == 0 for v in shadow["class_recall"].values()
    )


def part_id(i: int) -> str:
    """The part id ``tests.api.conftest.make_record`` gives inspection ``i``."""
    return f"run0-{'cam1' if i % 4 < 2 else 'cam2'}-{i}-{100 + i}"


def test_the_review_order_puts_disagreements_with_the_shadow_and_uncertain_boards_first(populated: Populated, desk):  # noqa: F811
    from sqlalchemy import create_engine, literal, select

    from inspection.store.information import uncertainty

    def u(confidence: float, threshold: float) -> float:  # the database computes it
        with create_engine("sqlite://").connect() as conn:
            return float(conn.execute(select(uncertainty(literal(confidence), threshold))).scalar_one())

    assert u(0.5, 0.5) == 1.0 and u(0.0, 0.5) == 0.0 and u(1.0, 0.5) == 0.0
    assert u(0.25, 0.5) == 0.5 and u(0.75, 0.5) == 0.5 and u(0.9, 1.0) == 0.9 and u(0.4, 0.0) == 0.6
    desk.start_shadow(Version("defect-yolov8n", 2), "ml", "watch")
    disagreeing = 6  # line-1, a pass by the active model
    assert outcome_of(disagreeing).value == "pass"
    ModelStates(populated.sync.log.engine).add_shadow_verdicts(
        [
            {
                "line_id": "line-1",
                "part_id": part_id(disagreeing),
                "name": "defect-yolov8n",
                "version": 2,
                "outcome": "fail",
                "boxes": [],
            }
        ]
    )
    r = populated.client.get(URL + "/review-order?limit=5", headers=populated.as_("qa"))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 5 and items[0]["inspection_id"] == str(uuid.UUID(int=disagreeing + 1))
    assert "the shadow model says fail" in items[0]["why"][1]
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True) and scores[1] < 1.01


def test_the_queue_lists_boards_by_expected_information_for_qa(populated: Populated, desk):  # noqa: F811
    """GET /api/v1/inspections?sort=information: the review-order ranking, with the queue's filters and pages."""
    c, qa = populated.client, populated.as_("qa")
    desk.start_shadow(Version("defect-yolov8n", 2), "ml", "watch")
    disagreeing = 4  # line-1, failed by the active model: the shadow passes it
    assert outcome_of(disagreeing).value == "fail"
    ModelStates(populated.sync.log.engine).add_shadow_verdicts(
        [{"line_id": "line-1", "part_id": part_id(disagreeing), "name": "defect-yolov8n", "version": 2,
          "outcome": "pass", "boxes": []}]
    )  # fmt: skip
    queue = "/api/v1/inspections?sort=information&review_status=pending&verdict=fail&verdict=uncertain"
    r = c.get(queue + "&limit=3", headers=qa)
    assert r.status_code == 200, r.text
    first = r.json()["items"]
    assert first[0]["id"] == str(uuid.UUID(int=disagreeing + 1))
    assert first[0]["information"]["score"] >= 1 and "the shadow model says pass" in first[0]["information"]["why"][1]
    ranking = [
        b["inspection_id"] for b in desk.review_order(1000) if b["verdict"] in ("fail", "uncertain")
    ]  # the same ranking as the models page's review order, narrowed by the queue's verdict filter
    assert [i["id"] for i in first] == ranking[:3] and {i["line_id"] for i in first} == {"line-1"}
    # a board handed out already is reviewed before the next page: nothing repeats, nothing is skipped
    ids, cursor = [i["id"] for i in first], r.json()["next_cursor"]
    r = c.post(f"/api/v1/inspections/{first[0]['id']}/review", json={"action": "confirm"}, headers=qa)
    assert r.status_code == 200
    while cursor:
        page = c.get(queue + f"&limit=3&cursor={cursor}", headers=qa).json()
        scores = [i["information"]["score"] for i in page["items"]]
        assert scores == sorted(scores, reverse=True)
        ids, cursor = ids + [i["id"] for i in page["items"]], page["next_cursor"]
    pending = c.get("/api/v1/inspections/count?line=line-1&review_status=pending&verdict=fail&verdict=uncertain",
                    headers=qa).json()["total"]  # fmt: skip
    assert ids == ranking and len(ids) == pending + 1  # + the one reviewed meanwhile
    assert c.get(queue, headers=populated.as_("ml")).status_code == 200
    assert c.get(queue, headers=populated.as_("camera")).status_code == 403
    assert c.get("/api/v1/inspections", headers=qa).json()["items"][0]["information"] is None  # other orders: none
    for bad, why in (
        ("&line=line-2", "ranks the boards of line 'line-1'"),
        ("&review_status=confirmed", "review_status must be pending"),
        ("&cursor=bm90LWEtY3Vyc29y", "not a sort=information cursor"),
    ):
        r = c.get(queue.replace("&review_status=pending", "") + bad, headers=qa)
        assert r.status_code in (400, 422) and why in r.json()["detail"], r.text
    populated.services.model_desk = None
    r = c.get(queue, headers=qa)
    assert r.status_code == 422 and "runs no inspection line" in r.json()["detail"]
