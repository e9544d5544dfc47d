"""The inspections, stats, models and export API on a populated store (real board crops, real SQLite).

Expected answers are computed here in Python from the stored values (``store.get``), never
by the SQL under test.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from inspection.core.classes import DEEPPCB_CLASSES
from inspection.core.outcome import Outcome
from inspection.store import StoredInspection
from tests.api.conftest import GOLDEN_RECIPE, T0, Populated, add_reference_inspections
from tests.conftest import REPO

RANK = {Outcome.UNCERTAIN: 0, Outcome.FAIL: 1, Outcome.PASS: 2}


def truth(p: Populated) -> list[StoredInspection]:
    return [p.store.get(str(uuid.UUID(int=i + 1))) for i in range(p.n)]


def newest_order(items: list[StoredInspection]) -> list[str]:
    return [x.id for x in sorted(items, key=lambda x: (x.created_at, x.id), reverse=True)]


def risk_order(items: list[StoredInspection]) -> list[str]:
    newest = sorted(items, key=lambda x: (x.created_at, x.id), reverse=True)
    return [x.id for x in sorted(newest, key=lambda x: (RANK[x.outcome], x.max_confidence))]  # stable sort


def walk(p: Populated, params: dict[str, Any], limit: int, role: str = "qa") -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(1000):
        r = p.client.get(
            "/api/v1/inspections",
            params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})},
            headers=p.as_(role),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= limit
        ids += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("pagination did not end")


def review(p: Populated, inspection_id: str, role: str = "qa", **body: Any) -> dict[str, Any]:
    r = p.client.post(f"/api/v1/inspections/{inspection_id}/review", json=body, headers=p.as_(role))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


# ---------------------------------------------------------------- listing


@pytest.mark.parametrize("limit", [1, 4, 7, 30, 200])
def test_newest_pages_walk_everything_once_in_order(populated: Populated, limit: int):
    assert walk(populated, {}, limit) == newest_order(truth(populated))


@pytest.mark.parametrize("limit", [1, 4, 11, 200])
def test_risk_queue_pages_walk_everything_once_in_order(populated: Populated, limit: int):
    items = truth(populated)
    got = walk(populated, {"sort": "risk"}, limit, role="ml")
    assert got == risk_order(items)
    outcomes = [populated.store.get(i).outcome for i in got]
    n_unc, n_fail = outcomes.count(Outcome.UNCERTAIN), outcomes.count(Outcome.FAIL)
    assert set(outcomes[:n_unc]) == {Outcome.UNCERTAIN} and set(outcomes[n_unc : n_unc + n_fail]) == {Outcome.FAIL}
    conf = [populated.store.get(i).max_confidence for i in got[:n_unc]]
    assert conf == sorted(conf)


def test_risk_queue_of_pending_parts_after_reviews(populated: Populated):
    items = truth(populated)
    flagged = [x for x in items if x.outcome is not Outcome.PASS]
    review(populated, flagged[0].id, action="reject")  # becomes pass / rejected: leaves the pending queue
    review(populated, flagged[1].id, action="confirm")
    items = truth(populated)
    pending = [x for x in items if x.review_status.value == "pending" and x.line_id == "line-1"]
    got = walk(populated, {"sort": "risk", "review_status": "pending", "line": "line-1"}, 3)
    assert got == risk_order(pending) and flagged[0].id not in got and flagged[1].id not in got


def _expected(items: list[StoredInspection], key: str, value: str) -> list[StoredInspection]:
    pick = {
        "line": lambda x: x.line_id == value,
        "camera": lambda x: x.camera_id == value,
        "verdict": lambda x: x.outcome.value == value,
        "defect_class": lambda x: value in x.defect_classes,
        "review_status": lambda x: x.review_status.value == value,
    }[key]
    return [x for x in items if pick(x)]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("line", "line-2"),
        ("camera", "cam2"),
        ("verdict", "uncertain"),
        ("verdict", "pass"),
        ("defect_class", "spur"),
        ("defect_class", "copper"),
        ("review_status", "pending"),
        ("review_status", "rejected"),
    ],
)
@pytest.mark.parametrize("sort", ["newest", "risk"])
def test_each_filter_selects_exactly_its_inspections(populated: Populated, key: str, value: str, sort: str):
    items = truth(populated)
    review(populated, items[1].id, action="reject")  # a rejected one, whose boxes no longer count as defects
    items = truth(populated)
    want = _expected(items, key, value)
    assert want, "the fixture must have some of each"
    order = risk_order if sort == "risk" else newest_order
    assert walk(populated, {key: value, "sort": sort}, 5) == order(want)


def test_time_range_and_combined_filters(populated: Populated):
    items = truth(populated)
    since, until = T0 + timedelta(minutes=1), T0 + timedelta(minutes=4)
    want = [x for x in items if since <= x.created_at < until and x.line_id == "line-1" and x.outcome is Outcome.FAIL]
    params = {"from": since.isoformat(), "to": until.isoformat(), "line": "line-1", "verdict": "fail"}
    assert walk(populated, params, 2) == newest_order(want) and want
    naive = {"from": since.replace(tzinfo=None).isoformat(), "to": until.replace(tzinfo=None).isoformat()}
    assert walk(populated, naive, 50) == newest_order([x for x in items if since <= x.created_at < until])
    assert walk(populated, {"line": "no-such-line"}, 10) == []


def test_summary_fields(populated: Populated):
    item = populated.client.get(
        "/api/v1/inspections", params={"sort": "risk", "limit": 1}, headers=populated.as_("qa")
    ).json()["items"][0]
    stored = populated.store.get(item["id"])
    assert item["verdict"] == "uncertain" == stored.outcome.value and item["review_status"] == "pending"
    assert item["max_confidence"] == stored.max_confidence == max(b.confidence for b in stored.boxes)
    assert item["defect_classes"] == sorted({b.class_name for b in stored.boxes})
    assert item["model"] == {"name": "defect-yolov8n", "version": "1"} and item["version"] == 1
    assert item["thumbnail_url"] == f"/api/v1/inspections/{stored.id}/evidence.jpg?size=160"
    assert item["evidence_url"] == f"/api/v1/inspections/{stored.id}/evidence.jpg"
    assert datetime.fromisoformat(item["created_at"]) == stored.created_at
    assert datetime.fromisoformat(item["captured_at"]) == stored.captured_at
    assert {k: item[k] for k in ("part_id", "line_id", "camera_id")} == {
        "part_id": stored.part_id,
        "line_id": stored.line_id,
        "camera_id": stored.camera_id,
    }
    passed = next(x for x in truth(populated) if x.outcome is Outcome.PASS)
    page = walk(populated, {"verdict": "pass"}, 50)
    assert passed.id in page and passed.max_confidence == 0.0


@pytest.mark.parametrize(
    ("params", "status", "reason"),
    [
        ({"limit": 0}, 422, "limit"),
        ({"limit": 201}, 422, "limit"),
        ({"verdict": "broken"}, 422, "verdict"),
        ({"sort": "oldest"}, 422, "sort"),
        ({"review_status": "done"}, 422, "review_status"),
        ({"from": "yesterday"}, 422, "from"),
        ({"cursor": "garbage"}, 400, "cursor"),
        ({"cursor": "W10"}, 400, "cursor"),
    ],
)
def test_bad_list_queries_are_4xx_with_the_reason(
    populated: Populated, params: dict[str, Any], status: int, reason: str
):
    r = populated.client.get("/api/v1/inspections", params=params, headers=populated.as_("qa"))
    assert r.status_code == status, r.text
    assert reason in r.text


def test_a_cursor_continues_only_its_own_sort(populated: Populated):
    h = populated.as_("qa")
    newest = populated.client.get("/api/v1/inspections", params={"limit": 2}, headers=h).json()["next_cursor"]
    risk = populated.client.get("/api/v1/inspections", params={"limit": 2, "sort": "risk"}, headers=h).json()[
        "next_cursor"
    ]
    assert (
        populated.client.get("/api/v1/inspections", params={"cursor": newest, "sort": "risk"}, headers=h).status_code
        == 400
    )
    assert populated.client.get("/api/v1/inspections", params={"cursor": risk}, headers=h).status_code == 400


# ---------------------------------------------------------------- detail, evidence, audit


def test_detail_has_boxes_crop_review_classes_and_audit(populated: Populated):
    stored = next(x for x in truth(populated) if x.outcome is Outcome.FAIL)
    d = populated.client.get(f"/api/v1/inspections/{stored.id}", headers=populated.as_("ml")).json()
    assert [b["id"] for b in d["boxes"]] == [b.id for b in stored.boxes]
    assert d["boxes"][0] == {
        "id": stored.boxes[0].id,
        "xyxy": list(stored.boxes[0].xyxy),
        "confidence": stored.boxes[0].confidence,
        "class_name": stored.boxes[0].class_name,
        "source": "model",
        "rejected": False,
    }
    assert d["crop"] == {"width": 560, "height": 480} and d["board_box"] == [40.0, 60.0, 600.0, 540.0]
    assert d["reasons"] == list(stored.reasons) and d["frame_seq"] == stored.frame_seq
    assert d["review"] == {"status": "pending", "by": None, "by_token_id": None, "at": None}
    assert d["class_names"] == list(DEEPPCB_CLASSES) and d["audit"] == []


def test_detail_names_the_golden_image_of_a_reference_inspection(populated: Populated):
    ref = add_reference_inspections(populated.services)
    h = populated.as_("qa")
    d = populated.client.get(f"/api/v1/inspections/{ref.aligned_id}", headers=h).json()
    assert (d["recipe"], d["golden_sha256"], d["alignment_score"]) == (GOLDEN_RECIPE, ref.golden_sha256, 0.9731)
    assert d["golden_url"] == f"/api/v1/goldens/{ref.golden_sha256}" and d["golden_aligned"] is True
    golden = populated.client.get(d["golden_url"], headers=h)
    assert golden.status_code == 200 and golden.headers["content-type"] == "image/png"
    image = cv2.imdecode(np.frombuffer(golden.content, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(image, ref.golden)
    evidence = populated.client.get(d["evidence_url"], headers=h).content
    board = cv2.imdecode(np.frombuffer(evidence, np.uint8), cv2.IMREAD_COLOR)
    assert board.shape == image.shape == (d["crop"]["height"], d["crop"]["width"], 3)  # one pixel grid
    failed = populated.client.get(f"/api/v1/inspections/{ref.unaligned_id}", headers=h).json()
    assert (failed["golden_sha256"], failed["alignment_score"], failed["golden_aligned"]) == (
        ref.golden_sha256,
        0.41,
        False,
    )
    listed = {
        it["id"]: it
        for it in populated.client.get("/api/v1/inspections", params={"limit": 200}, headers=h).json()["items"]
    }
    assert listed[ref.aligned_id]["recipe"] == GOLDEN_RECIPE and "golden_url" not in listed[ref.aligned_id]
    unknown = populated.client.get(f"/api/v1/goldens/{'0' * 64}", headers=h)
    assert unknown.status_code == 404, unknown.text


def test_a_plain_inspection_has_no_golden(populated: Populated):
    stored = next(x for x in truth(populated) if x.outcome is Outcome.FAIL)
    d = populated.client.get(f"/api/v1/inspections/{stored.id}", headers=populated.as_("qa")).json()
    assert {k: d[k] for k in ("recipe", "golden_sha256", "golden_url", "alignment_score", "golden_aligned")} == {
        "recipe": None,
        "golden_sha256": None,
        "golden_url": None,
        "alignment_score": None,
        "golden_aligned": None,
    }


def test_evidence_full_and_thumbnail(populated: Populated):
    stored = truth(populated)[4]
    h = populated.as_("qa")
    full = populated.client.get(f"/api/v1/inspections/{stored.id}/evidence.jpg", headers=h)
    assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg"
    assert full.content == populated.store.evidence.get(stored.evidence_sha256)
    image = cv2.imdecode(np.frombuffer(full.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (480, 560)
    thumb = populated.client.get(f"/api/v1/inspections/{stored.id}/evidence.jpg", params={"size": 160}, headers=h)
    small = cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR)
    assert thumb.status_code == 200 and max(small.shape[:2]) == 160 and small.shape[:2] == (137, 160)
    again = populated.client.get(f"/api/v1/inspections/{stored.id}/evidence.jpg?size=160", headers=h)
    assert again.content == thumb.content
    assert populated.client.get(f"/api/v1/inspections/{stored.id}/evidence.jpg?size=8", headers=h).status_code == 422


@pytest.mark.parametrize("suffix", ["", "/evidence.jpg", "/audit"])
def test_unknown_inspection_is_404_with_its_id(populated: Populated, suffix: str):
    r = populated.client.get(f"/api/v1/inspections/nope-42{suffix}", headers=populated.as_("qa"))
    assert r.status_code == 404 and "nope-42" in r.json()["detail"]


def test_audit_lists_every_action_oldest_first(populated: Populated):
    stored = next(x for x in truth(populated) if x.outcome is Outcome.FAIL)
    review(populated, stored.id, action="comment", comment="looks odd")
    review(populated, stored.id, action="confirm")
    audit = populated.client.get(f"/api/v1/inspections/{stored.id}/audit", headers=populated.as_("ml")).json()
    assert [(a["action"], a["actor"], a["role"], a["comment"]) for a in audit] == [
        ("comment", "alice", "qa", "looks odd"),
        ("confirm", "alice", "qa", None),
    ]
    assert audit[1]["before"]["review_status"] == "pending" and audit[1]["after"]["review_status"] == "confirmed"


# ---------------------------------------------------------------- stats


def hand_stats(items: list[StoredInspection], bucket_s: int) -> dict[str, Any]:
    counts = Counter(x.outcome.value for x in items)
    boxes = Counter(b.class_name for x in items for b in x.live_boxes)
    trend: dict[datetime, Counter[str]] = {}
    for x in items:
        start = datetime.fromtimestamp(x.created_at.timestamp() // bucket_s * bucket_s, UTC)
        trend.setdefault(start, Counter())[x.outcome.value] += 1
    return {
        "counts": {o: counts.get(o, 0) for o in ("pass", "fail", "uncertain")},
        "inspected": len(items),
        "pareto": sorted(boxes.items(), key=lambda kv: (-kv[1], kv[0])),
        "trend": [(s, c.get("pass", 0), c.get("fail", 0), c.get("uncertain", 0)) for s, c in sorted(trend.items())],
        "reviewed": sum(1 for x in items if x.review_status.value != "pending"),
        # one definition: the final verdict differs from the model's (an uncertain board confirmed as fail counts)
        "corrected": sum(1 for x in items if x.review_status.value != "pending" and x.outcome != x.model_verdict),
    }


def check_stats(body: dict[str, Any], want: dict[str, Any]) -> None:
    assert body["counts"] == want["counts"] and body["inspected"] == want["inspected"]
    assert body["yield"] == pytest.approx(want["counts"]["pass"] / want["inspected"], abs=1e-6)
    assert [(p["class_name"], p["count"]) for p in body["pareto"]] == want["pareto"]
    total = sum(n for _, n in want["pareto"])
    assert [p["share"] for p in body["pareto"]] == pytest.approx([n / total for _, n in want["pareto"]], abs=1e-6)
    assert body["pareto"][-1]["cumulative"] == pytest.approx(1.0)
    got = [(datetime.fromisoformat(t["start"]), t["pass"], t["fail"], t["uncertain"]) for t in body["trend"]]
    assert got == want["trend"]
    assert all(t["inspected"] == t["pass"] + t["fail"] + t["uncertain"] for t in body["trend"])
    assert (body["reviewed"], body["corrected"]) == (want["reviewed"], want["corrected"])


def test_stats_equal_a_hand_count_before_and_after_reviews(populated: Populated):
    h = populated.as_("qa")
    r = populated.client.get("/api/v1/stats", params={"bucket": "minute"}, headers=h)
    assert r.status_code == 200, r.text
    check_stats(r.json(), hand_stats(truth(populated), 60))
    items = truth(populated)
    fail = next(x for x in items if x.outcome is Outcome.FAIL)
    passed = next(x for x in items if x.outcome is Outcome.PASS)
    uncertain = next(x for x in items if x.outcome is Outcome.UNCERTAIN)
    review(populated, fail.id, action="reject")
    review(populated, passed.id, action="add_box", class_name="short", xyxy=[10, 10, 50, 40])
    review(populated, uncertain.id, action="confirm")
    items = truth(populated)
    check_stats(
        populated.client.get("/api/v1/stats", params={"bucket": "minute"}, headers=h).json(), hand_stats(items, 60)
    )
    check_stats(
        populated.client.get("/api/v1/stats", params={"bucket": "hour"}, headers=h).json(), hand_stats(items, 3600)
    )
    line2 = [x for x in items if x.line_id == "line-2"]
    check_stats(
        populated.client.get("/api/v1/stats", params={"bucket": "day", "line": "line-2"}, headers=h).json(),
        hand_stats(line2, 86400),
    )


def test_stats_time_window_and_throughput(populated: Populated):
    since, until = T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)
    items = [x for x in truth(populated) if since <= x.created_at < until]
    body = populated.client.get(
        "/api/v1/stats",
        params={"from": since.isoformat(), "to": until.isoformat(), "bucket": "minute"},
        headers=populated.as_("ml"),
    ).json()
    check_stats(body, hand_stats(items, 60))
    # over the time the line ran, not the window: batches of 5 a minute apart, so 9 boards end a gap, in 60 s
    assert body["throughput_per_hour"] == pytest.approx((len(items) - 1) * 60) and body["running_seconds"] == 60


def test_stats_of_nothing_and_bad_buckets(populated: Populated):
    h = populated.as_("qa")
    empty = populated.client.get("/api/v1/stats", params={"line": "none"}, headers=h).json()
    assert empty["inspected"] == 0 and empty["yield"] is None and empty["pareto"] == [] and empty["trend"] == []
    assert empty["throughput_per_hour"] is None and empty["running_seconds"] == 0
    assert populated.client.get("/api/v1/stats", params={"bucket": "week"}, headers=h).status_code == 422


# ---------------------------------------------------------------- models


def test_models_lists_the_active_models_with_their_cards(populated: Populated):
    body = populated.client.get("/api/v1/models", headers=populated.as_("qa")).json()
    by_role = {m["role"]: m for m in body["models"]}
    assert set(by_role) == {"defect", "part"}
    served = (REPO / "weights" / "defect-yolov8n").read_text().strip()  # the version the alias names
    assert by_role["defect"]["name"] + "-v" + by_role["defect"]["version"] == served
    assert by_role["defect"]["card"]["class_names"] == list(DEEPPCB_CLASSES)
    assert by_role["part"]["card"]["class_names"] == ["board"]


# ---------------------------------------------------------------- export


def read_zip(data: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    zf = zipfile.ZipFile(io.BytesIO(data))
    files = {name: zf.read(name) for name in zf.namelist()}
    return yaml.safe_load(files["data.yaml"]), files


def labels_of(files: dict[str, bytes], inspection_id: str) -> list[tuple[int, float, float, float, float]]:
    rows = []
    for line in files[f"labels/train/{inspection_id}.txt"].decode().splitlines():
        cls, *coords = line.split()
        rows.append((int(cls), *(float(v) for v in coords)))
    return rows  # type: ignore[return-value]


def test_export_is_a_yolo_dataset_of_the_reviewed_boxes(populated: Populated):
    items = truth(populated)
    fails = [x for x in items if x.outcome is Outcome.FAIL]
    passed = next(x for x in items if x.outcome is Outcome.PASS)
    review(populated, fails[0].id, action="confirm")
    review(populated, fails[1].id, action="reject")
    d = review(populated, fails[2].id, action="relabel", box_id=fails[2].boxes[0].id, class_name="pin-hole")
    review(populated, passed.id, action="add_box", class_name="short", xyxy=[56, 48, 112, 96])
    r = populated.client.get("/api/v1/export", headers=populated.as_("ml"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip", r.text
    data, files = read_zip(r.content)
    assert data["names"] == dict(enumerate(DEEPPCB_CLASSES)) and data["nc"] == 6 and data["train"] == "images/train"
    images = sorted(n for n in files if n.startswith("images/train/"))
    assert images == sorted(f"images/train/{x.id}.jpg" for x in (fails[0], fails[1], fails[2], passed))
    for name in images:
        assert cv2.imdecode(np.frombuffer(files[name], np.uint8), cv2.IMREAD_COLOR).shape[:2] == (480, 560)
    for x in (fails[0], fails[1], fails[2], passed):
        for cls, cx, cy, w, h in labels_of(files, x.id):
            assert 0 <= cls < 6 and all(0 <= v <= 1 for v in (cx, cy, w, h))
    want0 = [DEEPPCB_CLASSES.index(b.class_name) for b in fails[0].boxes]
    assert [row[0] for row in labels_of(files, fails[0].id)] == want0
    assert labels_of(files, fails[1].id) == []  # a false positive: a background image
    assert labels_of(files, fails[2].id)[0][0] == DEEPPCB_CLASSES.index("pin-hole")
    assert d["boxes"][0]["class_name"] == "pin-hole"
    assert labels_of(files, passed.id) == [
        (1, pytest.approx(84 / 560), pytest.approx(72 / 480), pytest.approx(56 / 560), pytest.approx(48 / 480))
    ]
    card = yaml.safe_load(files["card.json"])
    assert card["inspections"] == 4 and card["splits"]["train"]["images"] == 4
    assert card["by_review_status"] == {"confirmed": 1, "rejected": 1, "corrected": 2}
    assert "CARD.md" in files


def test_export_filters_and_empty_export(populated: Populated):
    items = truth(populated)
    fail = next(x for x in items if x.outcome is Outcome.FAIL)
    review(populated, fail.id, action="reject")
    review(populated, items[2].id, action="confirm")
    r = populated.client.get("/api/v1/export", params={"review_status": "rejected"}, headers=populated.as_("ml"))
    _, files = read_zip(r.content)
    assert sorted(n for n in files if n.startswith("images/")) == [f"images/train/{fail.id}.jpg"]
    r = populated.client.get("/api/v1/export", params={"line": "nowhere"}, headers=populated.as_("ml"))
    assert r.status_code == 404 and "nothing to export" in r.json()["detail"]
