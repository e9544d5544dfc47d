"""What a reviewer reads: the reasons of a board as they are now, and each audit entry, in words.

- ``current_reasons(item)``: one line per defect box still standing, naming its class and where
  it is on the board ("short in the top-left, x 120-150, y 40-80 px, confidence 0.87 (model)"),
  then the model's reasons that no box stands for (an unexplained difference, a failed
  alignment), and what the review decided. After a reviewer rejects a box it is no longer a
  reason; a box a reviewer drew is one.
- ``describe(entry)``: "alice (qa) rejected box 2 (short) as a false positive: fail -> pass".
"""

from __future__ import annotations

from typing import Any

from inspection.store import AuditEntry, BoxRecord, BoxSource, ReviewStatus, StoredInspection

_ROWS = ("top", "middle", "bottom")
_COLS = ("left", "centre", "right")


def place(box: tuple[float, float, float, float], width: int, height: int) -> str:
    """Where a box's centre lies on the board, in words: 'top-left', 'centre', 'bottom-right', ..."""
    x1, y1, x2, y2 = box
    col = min(2, max(0, int(3 * ((x1 + x2) / 2) / max(1, width))))
    row = min(2, max(0, int(3 * ((y1 + y2) / 2) / max(1, height))))
    if (row, col) == (1, 1):
        return "centre"
    if row == 1:
        return _COLS[col]
    if col == 1:
        return _ROWS[row]
    return f"{_ROWS[row]}-{_COLS[col]}"


def box_words(box: BoxRecord, width: int, height: int) -> str:
    x1, y1, x2, y2 = (round(v) for v in box.xyxy)
    where = f"in the {place(box.xyxy, width, height)}, x {x1}-{x2}, y {y1}-{y2} px"
    if box.source is BoxSource.REVIEW:
        return f"{box.class_name} {where} (drawn by QA)"
    relabelled = (
        f", relabelled from {box.model_class_name}" if box.model_class_name not in (None, box.class_name) else ""
    )
    return f"{box.class_name} {where}, confidence {box.confidence:.2f} (model{relabelled})"


def _box_free(reason: str, classes: set[str]) -> bool:
    """A model reason that no defect box stands for (alignment, unexplained difference, the defect model failed);
    a box's reason starts with its class ('fail: short 0.87 >= 0.50 at ...')."""
    text = reason.split(":", 1)[-1].strip()
    return not any(text.startswith(f"{name} ") for name in classes) or "difference" in text


_CLASS_WORDS = frozenset(("open", "short", "mousebite", "spur", "copper", "pin-hole"))


def current_reasons(item: StoredInspection) -> list[str]:
    """The board's reasons as they are now (after any review), in words."""
    out = [box_words(b, item.crop_width, item.crop_height) for b in item.live_boxes]
    kept_by_review = item.review_status is not ReviewStatus.PENDING
    classes = set(_CLASS_WORDS) | {b.class_name for b in item.boxes} | {b.model_class_name or "" for b in item.boxes}
    for reason in item.reasons:
        if _box_free(reason, classes - {""}) and not (kept_by_review and item.outcome.value == "pass"):
            out.append(reason.split(":", 1)[-1].strip())
    if item.review_status is not ReviewStatus.PENDING:
        who = item.reviewed_by or "a reviewer"
        out.append(
            f"{item.review_status.value} by {who}: verdict {item.outcome.value} (model: {item.model_verdict.value})"
        )
    elif not out:
        out.append("no defect found")
    return out


def _boxes(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    return list(snapshot.get("boxes") or [])


def _box_label(box: dict[str, Any]) -> str:
    return f"box {box.get('id', '?')} ({box.get('class_name', '?')})"


_VERBS = {
    "confirm": "confirmed the verdict",
    "reject": "rejected {boxes} as a false positive",
    "relabel": "relabelled {change}",
    "add_box": "drew a missed {added}",
    "comment": "commented",
    "undo": "undid their last action",
    "reopen": "reopened the board (back to the model's verdict and boxes, pending)",
}


def describe(entry: AuditEntry) -> str:
    """One audit entry in words: who (name, role), what, and the verdict change if any."""
    before, after = entry.before or {}, entry.after or {}
    b_boxes, a_boxes = _boxes(before), _boxes(after)
    boxes = ", ".join(_box_label(b) for b in b_boxes) or "every box"
    change = ", ".join(
        f"box {a.get('id')} {b.get('class_name')} -> {a.get('class_name')}"
        for b, a in zip(b_boxes, a_boxes, strict=False)
    )
    added = ", ".join(f"{a.get('class_name')} box" for a in a_boxes if a.get("source") == "review") or "box"
    what = _VERBS.get(entry.action, entry.action).format(boxes=boxes, change=change or "a box", added=added)
    if entry.action == "undo" and after.get("undid") is not None:
        what = f"undid their action #{after['undid']}"
    text = f"{entry.actor} ({entry.role}) {what}"
    verdicts = (before.get("verdict"), after.get("verdict"))
    if entry.action != "comment" and verdicts[0] and verdicts[1] and verdicts[0] != verdicts[1]:
        text += f": verdict {verdicts[0]} -> {verdicts[1]}"
    elif entry.action != "comment" and after.get("review_status"):
        text += f" ({after['review_status']})"
    return text
