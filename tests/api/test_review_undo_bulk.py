"""Issue 12, items 1, 2, 3 and 6: undo and reopen, a queue cleared in bulk, evidence in words, one correction.

Through the API with the database, the audit, the event log and the twin: a mistaken reject
is taken back and the twin follows back; a lead reopens someone's review; 200 boards are
confirmed in one request with one audit entry each; the default queue is what needs a human,
counted and searchable by part id; and the twin, stats and the dashboard count the same
corrections after the same sequence of reviews (undo included).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from inspection.core.outcome import Outcome
from inspection.store import ReviewStatus, StoredInspection
from tests.api.conftest import Populated, build_populated_app, dispose


def post(p: Populated, inspection_id: str, role: str = "qa", **body: Any) -> Any:
    return p.client.post(f"/api/v1/inspections/{inspection_id}/review", json=body, headers=p.as_(role))


def items(p: Populated) -> list[StoredInspection]:
    return [p.store.get(str(uuid.UUID(int=i + 1))) for i in range(p.n)]


def first(p: Populated, outcome: Outcome, skip: int = 0) -> StoredInspection:
    return [x for x in items(p) if x.outcome is outcome and x.review_status is ReviewStatus.PENDING][skip]


def twin_counters(p: Populated) -> dict[str, int]:
    out: dict[str, int] = {"corrected": 0, "pass": 0, "fail": 0, "uncertain": 0}
    for line in p.sync.twins.lines():
        c = json.loads(p.sync.twins.document_text(line)[1])["features"]["counters"]["properties"]
        out["corrected"] += c["corrected"]
        for k, v in c["verdicts"].items():
            out[k] += v
    return out


def stats(p: Populated) -> dict[str, Any]:
    r = p.client.get("/api/v1/stats", params={"bucket": "day"}, headers=p.as_("qa"))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


# -- item 1: undo and reopen -------------------------------------------------------------------------


def test_a_mistaken_reject_is_undone_and_the_twin_follows_back(populated: Populated) -> None:
    p = populated
    item = first(p, Outcome.FAIL)
    twin0 = twin_counters(p)
    assert post(p, item.id, action="reject", version=1).status_code == 200
    assert twin_counters(p)["corrected"] == twin0["corrected"] + 1
    r = post(p, item.id, action="undo", version=2)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["verdict"], body["review_status"], body["version"]) == ("fail", "pending", 3)
    assert body["review"]["by"] is None and not any(b["rejected"] for b in body["boxes"])
    got = p.store.get(item.id)
    assert got.outcome is Outcome.FAIL and len(got.live_boxes) == len(item.boxes) and not got.corrected
    audit = p.store.audit(item.id)
    assert [e.action for e in audit] == ["reject", "undo"] and audit[1].after["undid"] == audit[0].id
    assert twin_counters(p) == twin0  # verdict counts and corrections back where they were
    assert post(p, item.id, action="undo").status_code == 422  # nothing left to undo
    summaries = [a["summary"] for a in body["audit"]]
    assert summaries[0].startswith("alice (qa) rejected box") and "verdict fail -> pass" in summaries[0]
    assert summaries[1].startswith("alice (qa) undid their action #") and "verdict pass -> fail" in summaries[1]


def test_undo_takes_back_a_drawn_box_and_then_the_action_before(populated: Populated) -> None:
    p = populated
    item = first(p, Outcome.UNCERTAIN)
    box = item.boxes[0]
    assert post(p, item.id, action="relabel", box_id=box.id, class_name="spur" if box.class_name != "spur" else "open")
    assert post(p, item.id, action="add_box", class_name="short", xyxy=[5, 5, 40, 30]).status_code == 200
    assert len(p.store.get(item.id).boxes) == len(item.boxes) + 1
    assert post(p, item.id, action="undo").json()["boxes"][0]["class_name"] != box.class_name  # the drawn box went
    assert len(p.store.get(item.id).boxes) == len(item.boxes)
    back = post(p, item.id, action="undo").json()  # and the relabel
    assert back["boxes"][0]["class_name"] == box.class_name and back["review_status"] == "pending"
    assert back["verdict"] == "uncertain" and back["corrected"] is False


def test_only_the_token_that_acted_may_undo_it(populated: Populated) -> None:
    p = populated
    item = first(p, Outcome.FAIL)
    assert post(p, item.id, action="reject").status_code == 200
    r = post(p, item.id, "qa2", action="undo")
    assert r.status_code == 409 and "alice" in r.json()["detail"], r.text
    assert p.store.get(item.id).outcome is Outcome.PASS


def test_reopen_by_the_reviewer_or_a_lead_returns_the_model_verdict(populated: Populated) -> None:
    p = populated
    item = first(p, Outcome.FAIL)
    box = item.boxes[0]
    post(p, item.id, action="relabel", box_id=box.id, class_name="spur" if box.class_name != "spur" else "open")
    post(p, item.id, action="add_box", class_name="short", xyxy=[5, 5, 40, 30])
    r = post(p, item.id, "qa2", action="reopen")
    assert r.status_code == 409 and "only that token or a lead" in r.json()["detail"]
    assert post(p, item.id, "qa2", action="comment", comment="I disagree").status_code == 200
    r = post(p, item.id, "admin", action="reopen", comment="lead: look again")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["verdict"], body["review_status"], body["review"]["by"]) == ("fail", "pending", None)
    assert [(b["id"], b["class_name"], b["source"]) for b in body["boxes"]] == [
        (b.id, b.class_name, "model") for b in item.boxes
    ]
    assert body["audit"][-1]["summary"].startswith("admin (admin) reopened the board")
    assert post(p, item.id, action="reopen").status_code == 422  # pending already
    # the reviewer reopens their own review
    other = first(p, Outcome.UNCERTAIN)
    post(p, other.id, action="confirm")
    r = post(p, other.id, action="reopen")
    assert r.status_code == 200 and r.json()["verdict"] == "uncertain" and r.json()["review_status"] == "pending"


def test_a_lead_may_amend_someone_elses_review(populated: Populated) -> None:
    p = populated
    item = first(p, Outcome.FAIL)
    post(p, item.id, action="confirm")
    assert post(p, item.id, "qa2", action="reject").status_code == 409
    r = post(p, item.id, "admin", action="reject")
    assert r.status_code == 200 and r.json()["review"]["by"] == "admin"


# -- item 2: the queue at line rate -----------------------------------------------------------------


def test_the_default_queue_is_what_needs_a_human_counted_and_searchable(populated: Populated) -> None:
    p = populated
    h = p.as_("qa")
    flagged = {"verdict": ["fail", "uncertain"], "review_status": "pending"}
    page = p.client.get("/api/v1/inspections", params={**flagged, "sort": "risk", "limit": 200}, headers=h).json()
    want = [x for x in items(p) if x.outcome is not Outcome.PASS]
    assert {it["id"] for it in page["items"]} == {x.id for x in want}
    assert p.client.get("/api/v1/inspections/count", params=flagged, headers=h).json() == {"total": len(want)}
    part = want[3].part_id
    found = p.client.get("/api/v1/inspections", params={"part": part[-6:]}, headers=h).json()["items"]
    assert part in [it["part_id"] for it in found] and all(part[-6:] in it["part_id"] for it in found)
    assert p.client.get("/api/v1/inspections", params={"part": "%"}, headers=h).json()["items"] == []  # literal


@pytest.fixture
def big(tmp_path: Path) -> Iterator[Populated]:
    app, services, admin = build_populated_app(tmp_path, 320)
    assert services.tokens is not None
    tokens = {
        "admin": admin,
        "qa": services.tokens.create("qa", "alice")[1],
        "qa2": services.tokens.create("qa", "bob")[1],
    }
    with TestClient(app) as client:
        yield Populated(client, services, tokens, 320)
    dispose(services)


def test_confirming_200_boards_takes_one_request_with_one_audit_entry_each(big: Populated) -> None:
    p = big
    pending = [x for x in items(p) if x.outcome is not Outcome.PASS][:200]
    taken = pending[0]
    assert post(p, taken.id, "qa2", action="reject").status_code == 200  # bob got there first
    head0, twin0, stats0 = p.sync.log.head, twin_counters(p), stats(p)
    body = {"action": "confirm", "items": [{"id": x.id, "version": x.version} for x in pending]}
    r = p.client.post("/api/v1/inspections/bulk-review", json=body, headers=p.as_("qa"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["reviewed"]) == 199 and [s["id"] for s in out["skipped"]] == [taken.id]
    assert "bob" in out["skipped"][0]["reason"]
    for x in pending[1:]:
        got = p.store.get(x.id)
        assert got.review_status is ReviewStatus.CONFIRMED and got.reviewed_by == "alice"
        assert [e.action for e in p.store.audit(x.id)] == ["confirm"]
    uncertain = [x for x in pending[1:] if x.outcome is Outcome.UNCERTAIN]
    events = p.sync.log.read(head0, 1000, types=["review.corrected"])
    assert len(events) == len(uncertain) == p.sync.log.head - head0  # one event per verdict change, nothing else
    assert twin_counters(p)["corrected"] == twin0["corrected"] + len(uncertain) == stats(p)["corrected"]
    assert stats(p)["reviewed"] == stats0["reviewed"] + 199


def test_bulk_refuses_what_it_cannot_do(populated: Populated) -> None:
    p = populated
    x = first(p, Outcome.FAIL)
    url, h = "/api/v1/inspections/bulk-review", p.as_("qa")
    assert p.client.post(url, json={"action": "relabel", "items": [{"id": x.id}]}, headers=h).status_code == 422
    assert p.client.post(url, json={"action": "confirm", "items": []}, headers=h).status_code == 422
    many = [{"id": str(i)} for i in range(501)]
    assert p.client.post(url, json={"action": "confirm", "items": many}, headers=h).status_code == 422
    r = p.client.post(url, json={"action": "confirm", "items": [{"id": x.id, "version": 7}]}, headers=h)
    assert r.status_code == 200 and r.json()["reviewed"] == [] and "changed since you read it" in r.text
    assert (
        p.client.post(url, json={"action": "confirm", "items": [{"id": x.id}]}, headers=p.as_("ml")).status_code == 403
    )


# -- item 3: evidence in words ----------------------------------------------------------------------


def test_reasons_are_current_after_corrections_and_in_words(populated: Populated) -> None:
    p = populated
    item = next(x for x in items(p) if x.outcome is Outcome.FAIL and len(x.boxes) >= 2)
    detail = p.client.get(f"/api/v1/inspections/{item.id}", headers=p.as_("qa")).json()
    words = detail["current_reasons"]
    assert len(words) == len(item.boxes)
    first_box = item.boxes[0]
    assert words[0].startswith(f"{first_box.class_name} in the ") and "confidence" in words[0] and " px" in words[0]
    r = post(p, item.id, action="reject", box_id=first_box.id).json()
    assert len(r["current_reasons"]) == len(item.boxes)  # one box less, the decision added
    x1, _, x2, _ = (round(v) for v in first_box.xyxy)
    assert not any(f"x {x1}-{x2}," in w for w in r["current_reasons"])  # the rejected box is no reason any more
    assert r["current_reasons"][-1].startswith("corrected by alice: verdict fail (model: fail)")
    assert r["reasons"] == list(item.reasons)  # the model's own reasons are kept as they were


# -- item 6: one correction, counted the same everywhere ---------------------------------------------


def test_twin_stats_and_their_definition_agree_after_a_sequence_with_undo(populated: Populated) -> None:
    p = populated
    base = twin_counters(p)["corrected"]
    assert base == stats(p)["corrected"] == 0
    fail, fail2 = first(p, Outcome.FAIL), first(p, Outcome.FAIL, 1)
    unc, unc2 = first(p, Outcome.UNCERTAIN), first(p, Outcome.UNCERTAIN, 1)
    passed = first(p, Outcome.PASS)
    steps: list[tuple[str, dict[str, Any]]] = [
        (fail.id, {"action": "reject"}),  # fail -> pass: a correction
        (unc.id, {"action": "confirm"}),  # uncertain -> fail: a correction (the model could not decide)
        (fail2.id, {"action": "confirm"}),  # fail stays fail: none
        (passed.id, {"action": "add_box", "class_name": "open", "xyxy": [5, 5, 30, 30]}),  # pass -> fail
        (fail.id, {"action": "undo"}),  # the reject taken back
        (unc2.id, {"action": "reject"}),  # uncertain -> pass
        (unc2.id, {"action": "reopen"}),  # and reopened: back to the model's verdict
    ]
    for inspection_id, body in steps:
        assert post(p, inspection_id, **body).status_code == 200, body
    want = sum(1 for x in items(p) if x.review_status is not ReviewStatus.PENDING and x.outcome != x.model_verdict)
    assert want == 2  # unc (confirmed fail) and passed (a drawn box)
    assert twin_counters(p)["corrected"] == stats(p)["corrected"] == want
    assert sum(1 for x in items(p) if x.corrected) == want
    detail = p.client.get(f"/api/v1/inspections/{unc.id}", headers=p.as_("qa")).json()
    assert (detail["model_verdict"], detail["verdict"], detail["corrected"]) == ("uncertain", "fail", True)


def test_corrections_replay_from_the_log_to_the_same_twin(populated: Populated) -> None:
    p = populated
    x = first(p, Outcome.FAIL)
    post(p, x.id, action="reject")
    post(p, x.id, action="undo")
    post(p, first(p, Outcome.UNCERTAIN).id, action="confirm")
    live = twin_counters(p)
    replayed = sum(
        p.sync.twins.state_at_offset(line, p.sync.log.head)["counters"]["corrected"] for line in p.sync.twins.lines()
    )
    assert replayed == live["corrected"] == stats(p)["corrected"] == 1  # the undone reject counts no more
