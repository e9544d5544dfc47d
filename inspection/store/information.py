"""Active learning: a line's unreviewed boards ranked by what a review would teach the next model.

Expected information of a board, in [0, 2]: the active model's uncertainty (1 when its top box
sits at the fail threshold ``t``, falling linearly to 0 at confidence 0 and at 1) plus 1 when the
shadow model's verdict differs from the active one's. QA reviewing the highest first labels what
the next model most needs (``twinspect retrain`` takes the reviewed boards).

The score is computed by the database, so every unreviewed board of the line is ranked (not a
newest slice), and pages are keyset ranges of the total order (score desc, created_at desc,
id desc): a board reviewed or stored between two pages never makes a page repeat or skip one
still ranked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, case, cast, func, literal, or_, select
from sqlalchemy.types import Float

from inspection.store.model_states import Version, shadow_verdicts
from inspection.store.models import InspectionRow
from inspection.store.queries import conditions
from inspection.store.records import InspectionFilter


@dataclass(frozen=True)
class Place:
    """Where a board stands in the order (the last one a page handed out)."""

    score: float
    created_at: datetime
    inspection_id: str


def uncertainty(confidence: ColumnElement[float], threshold: float) -> ColumnElement[float]:
    """1 at ``threshold``, linearly down to 0 at confidence 0 and at 1 (SQL)."""
    t = float(threshold)
    c = cast(confidence, Float)
    above = (1.0 - c) / (1.0 - t) if t < 1.0 else literal(1.0, Float)
    below = c / t if t > 0.0 else literal(0.0, Float)
    return case((c <= 0.0, literal(0.0, Float)), (c < t, below), else_=above)


def _after(score: ColumnElement[float], place: Place) -> ColumnElement[bool]:
    col = InspectionRow
    newer_tail = or_(
        col.created_at < place.created_at, and_(col.created_at == place.created_at, col.id < place.inspection_id)
    )
    return or_(score < place.score, and_(score == place.score, newer_tail))


def ranked(
    engine: Engine,
    line_id: str,
    shadow: Version | None,
    threshold: float,
    limit: int = 100,
    flt: InspectionFilter | None = None,
    after: Place | None = None,
) -> list[dict[str, Any]]:
    """The line's unreviewed boards (``flt`` narrows them further, its line and review status aside),
    highest expected information first, then newest; only those after ``after``. Each with its
    ``score``, ``uncertainty``, the shadow's verdict and ``why`` (the score in words)."""
    ins = InspectionRow.__table__
    verdict = func.coalesce(ins.c.model_outcome, ins.c.outcome)
    u = uncertainty(ins.c.max_confidence, threshold)
    source = ins
    shadow_outcome: ColumnElement[Any] = literal(None, ins.c.outcome.type)
    if shadow is not None:
        sv = shadow_verdicts
        on = and_(sv.c.part_id == ins.c.part_id, sv.c.name == shadow.name, sv.c.version == shadow.version)
        source, shadow_outcome = ins.outerjoin(sv, on), sv.c.outcome
    disagree = case((and_(shadow_outcome.is_not(None), shadow_outcome != verdict), 1.0), else_=0.0)
    score = u + disagree
    where = [ins.c.line_id == line_id, ins.c.review_status == "pending", *conditions(flt)]
    if after is not None:
        where.append(_after(score, after))
    query = (
        select(
            ins.c.id,
            ins.c.part_id,
            verdict.label("verdict"),
            ins.c.max_confidence,
            ins.c.created_at,
            shadow_outcome.label("shadow"),
            u.label("uncertainty"),
            score.label("score"),
        )
        .select_from(source)
        .where(*where)
        .order_by(score.desc(), ins.c.created_at.desc(), ins.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [_board(r, threshold) for r in conn.execute(query)]


def _board(r: Any, threshold: float) -> dict[str, Any]:
    why = [f"uncertainty {r.uncertainty:.2f} (top box {r.max_confidence:.2f} vs threshold {threshold:.2f})"]
    if r.shadow is not None and r.shadow != r.verdict:
        why.append(f"the shadow model says {r.shadow}, the active one {r.verdict}")
    return {
        "inspection_id": r.id,
        "part_id": r.part_id,
        "verdict": r.verdict,
        "max_confidence": float(r.max_confidence),
        "shadow": r.shadow,
        "created_at": r.created_at,
        "score": float(r.score),
        "why": why,
    }
