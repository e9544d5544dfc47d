"""Dashboard numbers: verdict counts, yield, throughput, defect Pareto and a trend in time buckets.

Computed by SQL aggregates over covering indexes (inspection/store/stats.py); readers
with the ``qa`` or ``ml`` role.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from api.auth import require
from api.routers.inspections import Line, Since, Until, inspection_store, utc
from api.schemas_qa import Counts, ParetoItem, StatsOut, TrendItem
from api.tokens import Role
from inspection.core.outcome import Outcome
from inspection.store import InspectionFilter, Stats

router = APIRouter(prefix="/api/v1", tags=["stats"])


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _pareto(stats: Stats) -> list[ParetoItem]:
    total = sum(n for _, n in stats.pareto)
    out, running = [], 0
    for name, n in stats.pareto:
        running += n
        out.append(
            ParetoItem(class_name=name, count=n, share=round(n / total, 6), cumulative=round(running / total, 6))
        )
    return out


def _throughput(stats: Stats, since: datetime | None, until: datetime | None) -> float:
    """Inspected per hour from ``since`` (or the first inspection) to ``until`` (or now, whichever is earlier)."""
    start = since or stats.first
    now = datetime.now(UTC)
    end = min(until, now) if until is not None else now
    if start is None or end <= start:
        return 0.0
    return round(stats.inspected / ((end - start).total_seconds() / 3600.0), 3)


def _trend(stats: Stats) -> list[TrendItem]:
    items = []
    for point in stats.trend:
        c = point.counts
        n = sum(c.values())
        items.append(
            TrendItem.model_validate(
                {
                    "start": point.start,
                    "inspected": n,
                    "pass": c[Outcome.PASS],
                    "fail": c[Outcome.FAIL],
                    "uncertain": c[Outcome.UNCERTAIN],
                    "yield": _ratio(c[Outcome.PASS], n),
                }
            )
        )
    return items


@router.get(
    "/stats",
    response_model=StatsOut,
    dependencies=[Depends(require(Role.QA, Role.ML))],
    summary="Counts, yield, throughput, defect Pareto and trend of the stored inspections",
)
def stats(
    request: Request,
    line: Line = None,
    since: Since = None,
    until: Until = None,
    bucket: Annotated[Literal["minute", "hour", "day"], Query(description="Trend bucket.")] = "hour",
) -> StatsOut:
    since, until = utc(since), utc(until)
    flt = InspectionFilter(line_id=line, created_from=since, created_before=until)
    result = inspection_store(request).stats(flt, bucket)
    c = result.counts
    return StatsOut.model_validate(
        {
            "counts": Counts.model_validate(
                {"pass": c[Outcome.PASS], "fail": c[Outcome.FAIL], "uncertain": c[Outcome.UNCERTAIN]}
            ),
            "inspected": result.inspected,
            "yield": _ratio(c[Outcome.PASS], result.inspected),
            "throughput_per_hour": _throughput(result, since, until),
            "pareto": _pareto(result),
            "trend": _trend(result),
            "reviewed": result.reviewed,
            "corrected": result.corrected,
        }
    )
