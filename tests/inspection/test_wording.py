"""Issue 12 item 3: what a reviewer reads, in words (inspection/qa/wording.py), without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from inspection.core.outcome import Outcome
from inspection.qa.wording import current_reasons, describe, place
from inspection.store import AuditEntry, BoxRecord, BoxSource, ReviewStatus, StoredInspection

T = datetime(2026, 5, 9, 12, 0, tzinfo=UTC)


def board(*boxes: BoxRecord, reasons: tuple[str, ...] = ()) -> StoredInspection:
    return StoredInspection(
        "i1", "run0-cam1-7-107", "line-1", "cam1", 7, Outcome.FAIL, reasons, "m", "1", 107, T, T,
        "0" * 64, (0.0, 0.0, 600.0, 300.0), 600, 300, boxes, ReviewStatus.PENDING, None, None, 1,
    )  # fmt: skip


def test_place_names_the_ninth_of_the_board() -> None:
    assert place((10, 10, 30, 30), 600, 300) == "top-left"
    assert place((290, 140, 310, 160), 600, 300) == "centre"
    assert place((560, 250, 590, 290), 600, 300) == "bottom-right"
    assert place((290, 250, 310, 290), 600, 300) == "bottom"


def test_reasons_now_follow_the_review_and_keep_what_no_box_stands_for() -> None:
    scratch = BoxRecord(500, 20, 540, 60, 0.91, "scratch", id=1, model_class_name="scratch")  # not a DeepPCB class
    short = BoxRecord(20, 200, 60, 240, 0.62, "short", id=2, model_class_name="short")
    item = board(
        scratch,
        short,
        reasons=(
            "fail: scratch 0.91 >= 0.50 at (500,20)-(540,60)",
            "fail: short 0.62 >= 0.50 at (20,200)-(60,240)",
            "uncertain: unexplained difference at (100,100)-(120,130), 412 px²",
        ),
    )
    assert current_reasons(item) == [
        "scratch in the top-right, x 500-540, y 20-60 px, confidence 0.91 (model)",
        "short in the bottom-left, x 20-60, y 200-240 px, confidence 0.62 (model)",
        "unexplained difference at (100,100)-(120,130), 412 px²",
    ]
    reviewed = replace(
        item,
        boxes=(replace(scratch, rejected=True), replace(short, class_name="open")),
        review_status=ReviewStatus.CORRECTED,
        reviewed_by="alice",
    )
    assert current_reasons(reviewed) == [
        "open in the bottom-left, x 20-60, y 200-240 px, confidence 0.62 (model, relabelled from short)",
        "unexplained difference at (100,100)-(120,130), 412 px²",
        "corrected by alice: verdict fail (model: fail)",
    ]
    drawn = BoxRecord(280, 130, 320, 170, 1.0, "spur", BoxSource.REVIEW, id=3)
    assert current_reasons(board(drawn))[0] == "spur in the centre, x 280-320, y 130-170 px (drawn by QA)"
    assert current_reasons(board()) == ["no defect found"]


def entry(action: str, before: dict, after: dict, comment: str | None = None) -> AuditEntry:  # type: ignore[type-arg]
    return AuditEntry(9, "i1", T, "alice", "qa", action, before, after, comment, "tok-a")


def test_each_audit_entry_reads_as_a_sentence() -> None:
    box = {"id": 2, "class_name": "short", "source": "model"}
    fail, passed = {"verdict": "fail", "boxes": [box]}, {"verdict": "pass", "review_status": "rejected"}
    assert describe(entry("reject", fail, passed)) == (
        "alice (qa) rejected box 2 (short) as a false positive: verdict fail -> pass"
    )
    assert describe(entry("confirm", {"verdict": "fail"}, {"verdict": "fail", "review_status": "confirmed"})) == (
        "alice (qa) confirmed the verdict (confirmed)"
    )
    relabel = entry(
        "relabel", fail, {"verdict": "fail", "review_status": "corrected", "boxes": [{**box, "class_name": "open"}]}
    )
    assert describe(relabel) == "alice (qa) relabelled box 2 short -> open (corrected)"
    drawn = {
        "verdict": "fail",
        "review_status": "corrected",
        "boxes": [{"id": 5, "class_name": "spur", "source": "review"}],
    }
    assert describe(entry("add_box", {"verdict": "pass", "boxes": []}, drawn)) == (
        "alice (qa) drew a missed spur box: verdict pass -> fail"
    )
    assert describe(entry("undo", passed, {"verdict": "fail", "undid": 8})) == (
        "alice (qa) undid their action #8: verdict pass -> fail"
    )
    assert describe(entry("comment", {}, {}, "dust")) == "alice (qa) commented"
