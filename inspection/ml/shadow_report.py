"""The shadow report: the active and the shadow model side by side on the boards both saw, against reviewed truth.

Input: one dict per board (``inspection.store.model_states.shadow_pairs``). Reviewed boards
(their verdict after review is the truth) give each model's missed defects (truth fail, the
model said pass), false rejects (truth pass, the model said fail) and per-class recall (of
the boards whose reviewed boxes have a class, the share where the model found that class).
Every board where the two models disagree is listed with its inspection id (the UI links it).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

MAX_LISTED = 200


def _recall(pairs: list[dict[str, Any]], key: str) -> dict[str, float | None]:
    seen: Counter[str] = Counter()
    found: Counter[str] = Counter()
    for p in pairs:
        for c in p["truth_classes"]:
            seen[c] += 1
            found[c] += c in p[key]
    return {c: round(found[c] / seen[c], 4) for c in sorted(seen)}


def _side(pairs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    reviewed = [p for p in pairs if p["reviewed"]]
    missed = [p for p in reviewed if p["final"] == "fail" and p[key] == "pass"]
    false_rejects = [p for p in reviewed if p["final"] == "pass" and p[key] == "fail"]
    good = sum(p["final"] == "pass" for p in reviewed)
    bad = sum(p["final"] == "fail" for p in reviewed)
    return {
        "missed": len(missed),
        "missed_ids": [p["inspection_id"] for p in missed][:MAX_LISTED],
        "miss_rate": round(len(missed) / bad, 4) if bad else None,
        "false_rejects": len(false_rejects),
        "false_reject_ids": [p["inspection_id"] for p in false_rejects][:MAX_LISTED],
        "false_reject_rate": round(len(false_rejects) / good, 4) if good else None,
        "agreement_with_review": round(sum(p[key] == p["final"] for p in reviewed) / len(reviewed), 4)
        if reviewed
        else None,
        "class_recall": _recall(reviewed, f"{key}_classes"),
    }


def shadow_report(pairs: list[dict[str, Any]], active: str | None, shadow: str) -> dict[str, Any]:
    """See the module docstring."""
    disagree = [p for p in pairs if p["active"] != p["shadow"]]
    return {
        "active": active,
        "shadow": shadow,
        "boards": len(pairs),
        "reviewed": sum(p["reviewed"] for p in pairs),
        "disagreements": len(disagree),
        "disagreeing": [
            {k: p[k] for k in ("inspection_id", "part_id", "active", "shadow", "final", "reviewed")}
            for p in disagree[:MAX_LISTED]
        ],
        "models": {"active": _side(pairs, "active"), "shadow": _side(pairs, "shadow")},
    }
