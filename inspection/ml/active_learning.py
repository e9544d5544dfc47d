"""Active learning: which unreviewed boards would teach the next model most.

Expected information of a board, in [0, 2]: the active model's uncertainty (1 when its top box
sits at the fail threshold, falling to 0 at confidence 0 or 1) plus 1 when the shadow model's
verdict differs from the active one's. QA reviewing the highest first labels what the next
model most needs (``twinspect retrain`` takes the reviewed boards).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def uncertainty(confidence: float, threshold: float) -> float:
    """1 at the threshold, linearly down to 0 at 0 and at 1."""
    if confidence <= 0.0:
        return 0.0
    span = threshold if confidence < threshold else 1.0 - threshold
    return max(0.0, 1.0 - abs(confidence - threshold) / span) if span > 0 else 1.0


def information_order(boards: Sequence[dict[str, Any]], threshold: float, limit: int = 100) -> list[dict[str, Any]]:
    """``boards`` (from review_candidates) with their score and why, highest first."""
    out = []
    for b in boards:
        u = uncertainty(b["max_confidence"], threshold)
        disagree = b.get("shadow") is not None and b["shadow"] != b["verdict"]
        why = [f"uncertainty {u:.2f} (top box {b['max_confidence']:.2f} vs threshold {threshold:.2f})"]
        if disagree:
            why.append(f"the shadow model says {b['shadow']}, the active one {b['verdict']}")
        out.append({**b, "score": round(u + disagree, 4), "why": why})
    out.sort(key=lambda b: -b["score"])
    return out[:limit]
