"""Review actions: the pure rules, then through the API with the database, audit, event log and twin.

Every bad request is checked to change nothing: the inspection row (with its boxes), its
audit trail and the event log's head are compared before and after.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from api.app import create_app
from inspection.core.classes import DEEPPCB_CLASSES
from inspection.core.outcome import Outcome
from inspection.qa.review import (
    InvalidReview,
    ReviewAction,
    ReviewConflict,
    Reviewer,
    ReviewRequest,
    plan_review,
    run_review,
)
from inspection.store import BoxRecord, BoxSource, ReviewStatus, StoredInspection
from sync.drafts import review_corrected
from sync.schemas import ReviewCorrectedData
from sync.tables import events
from tests.api.conftest import Populated, bearer, build_populated_app, dispose

AT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
ALICE = Reviewer("alice", "qa")


def stored(outcome: Outcome = Outcome.FAIL, boxes: int = 2, **kw: Any) -> StoredInspection:
    bx = tuple(
        BoxRecord(10.0 * k, 10.0, 10.0 * k + 8, 20.0, 0.3 + 0.1 * k, DEEPPCB_CLASSES[k], id=100 + k)
        for k in range(boxes)
    )
    base = StoredInspection(
        id="i1",
        part_id="p1",
        line_id="line-1",
        camera_id="cam1",
        track_id=1,
        outcome=outcome,
        reasons=(),
        model_name="m",
        model_version="1",
        frame_seq=1,
        captured_at=AT,
        created_at=AT,
        evidence_sha256="0" * 64,
        board_xyxy=(0, 0, 64, 48),
        crop_width=64,
        crop_height=48,
        boxes=bx,
        review_status=ReviewStatus.PENDING,
        reviewed_by=None,
        reviewed_at=None,
        version=3,
    )
    return replace(base, **kw)


def plan(current: StoredInspection, action: str, reviewer: Reviewer = ALICE, **kw: Any):  # type: ignore[no-untyped-def]
    return plan_review(current, ReviewRequest(ReviewAction(action), **kw), reviewer, DEEPPCB_CLASSES, AT)


# ---------------------------------------------------------------- the rules, without a database


def test_confirm_keeps_a_fail_and_resolves_an_uncertain():
    p = plan(stored(Outcome.FAIL), "confirm")
    assert (p.after, p.change.review_status, p.verdict_changed) == (Outcome.FAIL, ReviewStatus.CONFIRMED, False)
    p = plan(stored(Outcome.UNCERTAIN), "confirm")
    assert (p.after, p.verdict_changed) == (Outcome.FAIL, True)
    assert plan(stored(Outcome.UNCERTAIN, boxes=0), "confirm").after is Outcome.PASS
    assert p.change.reviewed_by == "alice" and p.change.reviewed_at == AT and p.change.expected_version == 3


def test_reject_marks_every_live_box_and_passes_the_part():
    p = plan(stored(Outcome.FAIL, boxes=3), "reject")
    assert (p.after, p.change.review_status) == (Outcome.PASS, ReviewStatus.REJECTED)
    assert sorted(p.change.reject_box_ids) == [100, 101, 102] and p.change.max_confidence == 0.0
    event = review_corrected(p, "edge-1").envelope(1)
    assert event["data"]["boxes"] == [] and event["data"]["before"] == "fail"
    assert event["source"] == "/twinspect/edge-1/qa" and event["subject"] == p.inspection.part_id
    one = plan(stored(Outcome.FAIL, boxes=3), "reject", box_id=101)
    assert (one.after, one.change.review_status, one.change.reject_box_ids) == (
        Outcome.FAIL,
        ReviewStatus.CORRECTED,
        (101,),
    )
    assert one.change.max_confidence == pytest.approx(0.5)
    assert one.change.audit.before["boxes"][0]["rejected"] is False and one.change.audit.after["boxes"][0]["rejected"]


def test_relabel_and_add_box_make_a_fail_and_keep_the_old_class_in_the_audit():
    p = plan(stored(Outcome.UNCERTAIN), "relabel", box_id=100, class_name="short")
    assert (p.after, p.change.review_status, p.change.relabel) == (
        Outcome.FAIL,
        ReviewStatus.CORRECTED,
        ((100, "short"),),
    )
    assert p.change.audit.before["boxes"][0]["class_name"] == "open"
    assert p.change.audit.after["boxes"][0]["class_name"] == "short"
    p = plan(stored(Outcome.PASS, boxes=0), "add_box", class_name="spur", xyxy=(1, 2, 30, 40))
    assert (p.after, p.change.review_status) == (Outcome.FAIL, ReviewStatus.CORRECTED)
    assert p.change.add_boxes == (BoxRecord(1, 2, 30, 40, 1.0, "spur", BoxSource.REVIEW),)
    assert p.change.max_confidence == 1.0
    assert review_corrected(p, "edge-1").data["boxes"][0]["class_name"] == "spur"


def test_comment_is_audit_only_and_never_conflicts():
    done = stored(review_status=ReviewStatus.CONFIRMED, reviewed_by="bob", reviewed_at=AT)
    p = plan(done, "comment", comment="  why?  ", version=1)
    assert p.change.update_row is False and p.change.audit.comment == "why?" and not p.verdict_changed


@pytest.mark.parametrize(
    ("action", "kw", "reason"),
    [
        ("relabel", {"box_id": 100, "class_name": "scratch"}, "not a defect class"),
        ("relabel", {"box_id": 999, "class_name": "short"}, "not a box of inspection"),
        ("relabel", {"box_id": 100, "class_name": "open"}, "already 'open'"),
        ("relabel", {"class_name": "short"}, "needs box_id"),
        ("add_box", {"class_name": "spur", "xyxy": (0, 0, 65, 10)}, "inside the 64x48 crop"),
        ("add_box", {"class_name": "spur", "xyxy": (10, 5, 10, 9)}, "x1 < x2"),
        ("add_box", {"class_name": "spur", "xyxy": (-1, 5, 10, 9)}, "inside"),
        ("add_box", {"class_name": "spur", "xyxy": (1, 2, 3, float("nan"))}, "finite"),
        ("add_box", {"xyxy": (1, 2, 3, 4)}, "needs class_name"),
        ("confirm", {"box_id": 100}, "takes no box_id"),
        ("comment", {"comment": "   "}, "needs comment"),
        ("comment", {"comment": "x" * 2001}, "at most 2000"),
        ("reject", {"box_id": 7}, "not a box"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(action: str, kw: dict[str, Any], reason: str):
    with pytest.raises(InvalidReview, match=reason.replace("(", r"\(")):
        plan(stored(), action, **kw)


def test_someone_elses_review_and_a_stale_version_conflict():
    done = stored(review_status=ReviewStatus.CONFIRMED, reviewed_by="bob", reviewed_at=AT)
    with pytest.raises(ReviewConflict, match="already reviewed by 'bob'"):
        plan(done, "reject")
    assert plan(done, "reject", reviewer=Reviewer("bob", "qa")).after is Outcome.PASS  # bob may amend
    with pytest.raises(ReviewConflict, match="you saw version 2, it is now 3"):
        plan(stored(), "confirm", version=2)


# ---------------------------------------------------------------- through the API


def row_state(p: Populated, inspection_id: str) -> tuple[Any, ...]:
    return p.store.get(inspection_id), p.store.audit(inspection_id), p.sync.log.head


def twin_verdicts(p: Populated, line: str) -> dict[str, Any]:
    doc = json.loads(p.sync.twins.document_text(line)[1])
    counters = doc["features"]["counters"]["properties"]
    return {**counters["verdicts"], "corrected": counters["corrected"]}


def corrected_events(p: Populated, after: int) -> list[dict[str, Any]]:
    return [e.cloudevent() for e in p.sync.log.read(after, 100, types=["review.corrected"])]


def post(p: Populated, inspection_id: str, role: str = "qa", **body: Any):  # type: ignore[no-untyped-def]
    return p.client.post(f"/api/v1/inspections/{inspection_id}/review", json=body, headers=p.as_(role))


def first(p: Populated, outcome: Outcome, skip: int = 0) -> StoredInspection:
    items = [p.store.get(str(uuid.UUID(int=i + 1))) for i in range(p.n)]
    return [x for x in items if x.outcome is outcome][skip]


def test_reject_writes_the_row_boxes_audit_event_and_twin(populated: Populated):
    p = populated
    item = first(p, Outcome.FAIL)
    twin0, head0 = twin_verdicts(p, item.line_id), p.sync.log.head
    r = post(p, item.id, action="reject", version=1, comment="dust on the lens")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["verdict"], body["review_status"], body["version"]) == ("pass", "rejected", 2)
    assert body["review"]["by"] == "alice" and all(b["rejected"] for b in body["boxes"])
    got = p.store.get(item.id)
    assert got.outcome is Outcome.PASS and got.live_boxes == () and got.reviewed_by == "alice"
    (entry,) = p.store.audit(item.id)
    assert (entry.actor, entry.role, entry.action, entry.comment) == ("alice", "qa", "reject", "dust on the lens")
    assert entry.before["verdict"] == "fail" and entry.after["verdict"] == "pass"
    assert [b["id"] for b in entry.before["boxes"]] == [b.id for b in item.boxes]
    (ce,) = corrected_events(p, head0)
    assert ce["subject"] == item.part_id and ce["lineid"] == item.line_id
    assert ce["source"] == "/twinspect/edge-test/qa"
    data = ReviewCorrectedData.model_validate(ce["data"])
    assert (data.inspection_id, data.before, data.after, data.action, data.reviewer, data.boxes) == (
        item.id,
        "fail",
        "pass",
        "reject",
        "alice",
        [],
    )
    twin1 = twin_verdicts(p, item.line_id)
    assert (twin1["fail"], twin1["pass"], twin1["corrected"]) == (
        twin0["fail"] - 1,
        twin0["pass"] + 1,
        twin0["corrected"] + 1,
    )
    assert p.sync.log.head == head0 + 1


def test_confirm_of_a_fail_is_audited_without_an_event(populated: Populated):
    p = populated
    item = first(p, Outcome.FAIL)
    twin0, head0 = twin_verdicts(p, item.line_id), p.sync.log.head
    body = post(p, item.id, action="confirm").json()
    assert (body["verdict"], body["review_status"]) == ("fail", "confirmed")
    assert [a["action"] for a in body["audit"]] == ["confirm"]
    assert p.sync.log.head == head0 and twin_verdicts(p, item.line_id) == twin0


def test_confirm_of_an_uncertain_makes_it_a_fail_and_the_twin_follows(populated: Populated):
    p = populated
    item = first(p, Outcome.UNCERTAIN)
    twin0, head0 = twin_verdicts(p, item.line_id), p.sync.log.head
    assert post(p, item.id, action="confirm").json()["verdict"] == "fail"
    (ce,) = corrected_events(p, head0)
    assert (ce["data"]["before"], ce["data"]["after"]) == ("uncertain", "fail")
    assert len(ce["data"]["boxes"]) == len(item.boxes)
    twin1 = twin_verdicts(p, item.line_id)
    assert (twin1["uncertain"], twin1["fail"]) == (twin0["uncertain"] - 1, twin0["fail"] + 1)


def test_relabel_changes_one_box_and_keeps_the_original_in_the_audit(populated: Populated):
    p = populated
    item = first(p, Outcome.FAIL, skip=2)
    box = item.boxes[0]
    new = next(c for c in DEEPPCB_CLASSES if c != box.class_name)
    head0 = p.sync.log.head
    body = post(p, item.id, action="relabel", box_id=box.id, class_name=new).json()
    assert body["review_status"] == "corrected" and body["boxes"][0]["class_name"] == new
    assert [b["class_name"] for b in body["boxes"][1:]] == [b.class_name for b in item.boxes[1:]]
    entry = p.store.audit(item.id)[0]
    assert entry.before["boxes"] == [
        {
            "id": box.id,
            "xyxy": list(box.xyxy),
            "confidence": box.confidence,
            "class_name": box.class_name,
            "source": "model",
            "rejected": False,
        }
    ]
    assert entry.after["boxes"][0]["class_name"] == new
    assert p.sync.log.head == head0  # a fail stays a fail: no event


def test_add_box_on_a_pass_makes_it_a_fail_with_an_event(populated: Populated):
    p = populated
    item = first(p, Outcome.PASS)
    twin0, head0 = twin_verdicts(p, item.line_id), p.sync.log.head
    body = post(p, item.id, action="add_box", class_name="short", xyxy=[100, 120, 140.5, 150]).json()
    assert (body["verdict"], body["review_status"], body["max_confidence"]) == ("fail", "corrected", 1.0)
    (box,) = body["boxes"]
    assert (box["xyxy"], box["class_name"], box["source"], box["confidence"]) == (
        [100, 120, 140.5, 150],
        "short",
        "review",
        1.0,
    )
    assert p.store.audit(item.id)[0].after["boxes"][0]["id"] == box["id"]
    (ce,) = corrected_events(p, head0)
    assert ce["data"]["boxes"] == [{"xyxy": [100.0, 120.0, 140.5, 150.0], "confidence": 1.0, "class_name": "short"}]
    twin1 = twin_verdicts(p, item.line_id)
    assert (twin1["pass"], twin1["fail"]) == (twin0["pass"] - 1, twin0["fail"] + 1)


def test_comment_changes_only_the_audit(populated: Populated):
    p = populated
    item = first(p, Outcome.FAIL)
    body = post(p, item.id, action="comment", comment="check the solder mask").json()
    assert (body["version"], body["review_status"]) == (1, "pending")
    assert body["audit"][0]["comment"] == "check the solder mask"
    assert p.store.get(item.id) == item


def test_someone_elses_review_is_409_with_the_current_state_and_changes_nothing(populated: Populated):
    p = populated
    item = first(p, Outcome.FAIL)
    assert post(p, item.id, action="confirm").status_code == 200
    before = row_state(p, item.id)
    r = post(p, item.id, role="qa2", action="reject")
    assert r.status_code == 409
    body = r.json()
    assert "already reviewed by 'alice'" in body["detail"]
    assert body["current"]["review"]["by"] == "alice" and body["current"]["review_status"] == "confirmed"
    assert body["current"]["version"] == 2 and body["current"]["audit"][0]["action"] == "confirm"
    assert row_state(p, item.id) == before
    amended = post(p, item.id, action="reject", version=2)  # alice amends her own review
    assert amended.status_code == 200 and amended.json()["review_status"] == "rejected"
    assert post(p, item.id, role="qa2", action="comment", comment="agree").status_code == 200


def test_a_stale_version_is_409(populated: Populated):
    p = populated
    item = first(p, Outcome.UNCERTAIN)
    before = row_state(p, item.id)
    r = post(p, item.id, action="confirm", version=7)
    assert r.status_code == 409 and "you saw version 7" in r.json()["detail"]
    assert r.json()["current"]["version"] == 1 and row_state(p, item.id) == before


@pytest.mark.parametrize(
    ("role", "body", "status", "reason"),
    [
        ("qa", {"action": "relabel", "box_id": None, "class_name": "open"}, 422, "needs box_id"),
        ("qa", {"action": "relabel", "box_id": "BOX", "class_name": "short"}, 422, "box_id"),
        ("qa", {"action": "relabel", "box_id": "FIRST", "class_name": "scratch"}, 422, "not a defect class"),
        ("qa", {"action": "relabel", "box_id": "OTHER", "class_name": "short"}, 422, "not a box of inspection"),
        ("qa", {"action": "add_box", "class_name": "spur", "xyxy": [0, 0, 561, 10]}, 422, "inside the 560x480 crop"),
        ("qa", {"action": "add_box", "class_name": "spur", "xyxy": [50, 0, 40, 10]}, 422, "x1 < x2"),
        ("qa", {"action": "add_box", "class_name": "spur", "xyxy": [1, 2, 3]}, 422, "xyxy"),
        ("qa", {"action": "approve"}, 422, "action"),
        ("qa", {"action": "confirm", "verdict": "pass"}, 422, "verdict"),
        ("qa", {"action": "comment"}, 422, "needs comment"),
        ("qa", {"action": "confirm", "version": "one"}, 422, "version"),
        ("ml", {"action": "confirm"}, 403, "role 'ml' may not"),
        ("twin", {"action": "confirm"}, 403, "role 'twin' may not"),
        (None, {"action": "confirm"}, 401, "sign in"),
    ],
)
def test_bad_reviews_are_4xx_with_the_reason_and_change_nothing(
    populated: Populated, role: str | None, body: dict[str, Any], status: int, reason: str
):
    p = populated
    item, other = first(p, Outcome.FAIL), first(p, Outcome.FAIL, skip=1)
    subst = {"FIRST": item.boxes[0].id, "OTHER": other.boxes[0].id}
    body = {k: subst.get(v, v) if isinstance(v, str) and k == "box_id" else v for k, v in body.items()}
    before, twin0 = row_state(p, item.id), twin_verdicts(p, item.line_id)
    headers = p.as_(role) if role else {}
    r = p.client.post(f"/api/v1/inspections/{item.id}/review", json=body, headers=headers)
    assert r.status_code == status, r.text
    assert reason in r.text
    assert row_state(p, item.id) == before and twin_verdicts(p, item.line_id) == twin0
    assert row_state(p, other.id)[0] == other


def test_unknown_inspection_is_404_and_changes_nothing(populated: Populated):
    head0 = populated.sync.log.head
    r = post(populated, "no-such-id", action="confirm")
    assert r.status_code == 404 and "no-such-id" in r.json()["detail"]
    assert populated.sync.log.head == head0


def test_the_review_and_its_event_commit_together_or_not_at_all(populated: Populated):
    """The outbox: when the event cannot be written, the review's writes are rolled back too."""
    p = populated
    item = first(p, Outcome.FAIL)
    before, twin0 = row_state(p, item.id), twin_verdicts(p, item.line_id)
    clash = {
        "offset": p.sync.log.head + 1,
        "id": str(uuid.uuid4()),
        "line_id": "other",
        "sequence": 1,
        "type": "part.entered",
        "time": "2026-01-01T00:00:00.000Z",
        "body": "{}",
    }
    with p.sync.log.engine.begin() as conn:  # an offset the log will try to use next
        conn.execute(insert(events).values(**clash))
    client = TestClient(p.client.app, raise_server_exceptions=False)  # no lifespan: the app runs already
    r = client.post(f"/api/v1/inspections/{item.id}/review", json={"action": "reject"}, headers=p.as_("qa"))
    assert r.status_code == 500
    assert row_state(p, item.id) == before and twin_verdicts(p, item.line_id) == twin0
    with p.sync.log.engine.begin() as conn:
        conn.execute(events.delete().where(events.c.id == clash["id"]))
    assert post(p, item.id, action="reject").status_code == 200


def test_a_write_between_read_and_commit_is_replanned(populated: Populated):
    """run_review re-reads when the row changed under it; the re-plan then sees bob's review: a conflict."""
    p = populated
    item = first(p, Outcome.FAIL)
    calls = []

    def commit(plan, write):  # type: ignore[no-untyped-def]
        if not calls:
            bob = plan_review(
                p.store.get(item.id), ReviewRequest(ReviewAction.CONFIRM), Reviewer("bob", "qa"), DEEPPCB_CLASSES, AT
            )
            p.store.apply_review(bob.change)  # bob's review lands first
        calls.append(plan)
        p.store.apply_review(plan.change)

    with pytest.raises(ReviewConflict, match="already reviewed by 'bob'"):
        run_review(p.store, item.id, ReviewRequest(ReviewAction.REJECT), ALICE, DEEPPCB_CLASSES, commit)
    got = p.store.get(item.id)
    assert (got.reviewed_by, got.review_status, got.version) == ("bob", ReviewStatus.CONFIRMED, 2)
    assert [e.actor for e in p.store.audit(item.id)] == ["bob"]


def test_without_an_event_log_the_review_is_written_alone(tmp_path: Path):
    app, services, admin = build_populated_app(tmp_path, 6)
    assert services.sync is not None and services.inspections is not None
    head0 = services.sync.log.head
    item = next(x for x in services.inspections.iterate() if x.outcome is Outcome.FAIL)
    with TestClient(create_app(replace(services, sync=None)), headers=bearer(admin)) as client:
        r = client.post(f"/api/v1/inspections/{item.id}/review", json={"action": "reject"})
    assert r.status_code == 200 and r.json()["verdict"] == "pass" and r.json()["review"]["by"] == "admin"
    assert services.inspections.get(item.id).outcome is Outcome.PASS and services.sync.log.head == head0
    dispose(services)
