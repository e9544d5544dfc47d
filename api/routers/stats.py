"""Dashboard numbers: verdict counts, yield, throughput, defect Pareto and a trend in time buckets.

Throughput is per hour of the time the line ran, in total and per bucket (inspection/store/stats.py
says how running time is measured), never the count divided by the window asked for.

Computed by SQL aggregates over covering indexes (inspection/store/stats.py); readers
with the ``qa`` or ``ml`` role.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from api.auth import require
from api.routers.inspections import Line, Since, Until, inspection_store, utc
from api.schemas_qa import Counts, ParetoItem, StatsOut, TrendItem
from api.tokens import Role
from inspection.core.outcome import Outcome
from inspection.store import InspectionFilter, Stats
from inspection.store.stats import IDLE_GAP_S

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
                    "running_seconds": round(point.running.seconds, 3),
                    "throughput_per_hour": point.running.per_hour,
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
    bucket: Annotated[
        Literal["minute", "hour", "day", "auto"],
        Query(description="Trend bucket; auto: the finest that gives at most 240 buckets over the data's time span."),
    ] = "hour",
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
            "throughput_per_hour": result.running.per_hour,
            "running_seconds": round(result.running.seconds, 3),
            "idle_gap_seconds": IDLE_GAP_S,
            "bucket": result.bucket.value,
            "pareto": _pareto(result),
            "trend": _trend(result),
            "reviewed": result.reviewed,
            "corrected": result.corrected,
        }
    )
