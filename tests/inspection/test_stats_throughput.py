"""Throughput over the time the line ran (issue 12 item 5), on SQLite and PostgreSQL, store and API.

A line doing 1,500 boards an hour for ten minutes inside a 24-hour window read "1.4 /h"
(the count divided by the window); the trend showed one hourly bar for the whole run.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from api.tokens import Role, TokenStore
from inspection.core.classes import DEEPPCB_CLASSES
from inspection.store import EvidenceStore, InspectionFilter, InspectionStore, open_database
from inspection.store.stats import IDLE_GAP_S, Bucket
from tests.inspection.test_store import Clock, database_url, make_record

T = datetime(2026, 5, 9, 11, 55, tzinfo=UTC)
PITCH_S = 2.4  # 1,500 boards an hour
RUN = 250  # ten minutes at that pitch


def _fill(store: InspectionStore, clock: Clock, start: datetime, n: int, pitch_s: float, line: str) -> None:
    for i in range(n):
        clock.now = start + timedelta(seconds=i * pitch_s)
        store.save(make_record(store.evidence, f"{line}-{start:%m%d%H%M%S}-{i}", line_id=line, boxes=0, seed=i))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[InspectionStore, Clock]]:
    with database_url(request.param, tmp_path) as url:
        engine = open_database(url)
        clock = Clock(T)
        try:
            yield InspectionStore(engine, EvidenceStore(tmp_path / "evidence"), clock=clock), clock
        finally:
            engine.dispose()


def test_throughput_is_over_the_time_the_line_ran_per_bucket(store: tuple[InspectionStore, Clock]):
    inspections, clock = store
    _fill(inspections, clock, T, RUN, PITCH_S, "L1")  # 11:55:00 .. 12:04:57.6
    _fill(inspections, clock, T + timedelta(hours=3), 100, PITCH_S, "L1")  # after a stop of ~3 h
    stats = inspections.stats(None, Bucket.AUTO)
    assert stats.running.boards == RUN - 1 + 100 - 1  # the board that starts a run is no time
    assert stats.running.seconds == pytest.approx((RUN - 1 + 99) * PITCH_S, abs=0.01)
    assert stats.running.per_hour == pytest.approx(1500, rel=1e-3)
    assert stats.bucket is Bucket.MINUTE  # 3 h 9 min of data: minute buckets, 190 of them at most
    per_bucket = [p.running.per_hour for p in stats.trend if p.running.seconds >= 60 - 2 * PITCH_S]
    assert len(stats.trend) == 10 + 4 and len(per_bucket) >= 10
    assert per_bucket == pytest.approx([1500] * len(per_bucket), rel=0.05)
    hourly = inspections.stats(None, Bucket.HOUR)
    assert [p.start.hour for p in hourly.trend] == [11, 12, 14]
    assert [p.running.boards for p in hourly.trend] == [124, 125, 99]  # 11:55-12:00 is 125 boards: 124 gaps


def test_a_run_of_minutes_gets_several_buckets_and_a_long_range_coarser_ones(store: tuple[InspectionStore, Clock]):
    inspections, clock = store
    _fill(inspections, clock, T, 25, PITCH_S, "L1")  # one minute
    assert inspections.stats(None, Bucket.AUTO).bucket is Bucket.MINUTE
    _fill(inspections, clock, T + timedelta(days=2), 2, PITCH_S, "L1")
    assert inspections.stats(None, Bucket.AUTO).bucket is Bucket.HOUR
    _fill(inspections, clock, T + timedelta(days=40), 2, PITCH_S, "L1")
    auto = inspections.stats(None, Bucket.AUTO)
    assert auto.bucket is Bucket.DAY and auto.running.boards == 24 + 1 + 1


def test_gaps_are_per_selection_and_a_stop_is_no_running_time(store: tuple[InspectionStore, Clock]):
    inspections, clock = store
    _fill(inspections, clock, T, 11, 10.0, "L1")  # 10 boards in 100 s: 360 /h
    _fill(inspections, clock, T + timedelta(seconds=5), 11, 10.0, "L2")  # the same, 5 s later
    _fill(inspections, clock, T + timedelta(seconds=105 + IDLE_GAP_S + 180), 1, 1.0, "L1")  # alone after a stop
    line1 = inspections.stats(InspectionFilter(line_id="L1"), Bucket.MINUTE)
    assert (line1.running.boards, line1.running.seconds) == (10, pytest.approx(100.0, abs=0.01))
    both = inspections.stats(None, Bucket.MINUTE)  # two lines side by side: boards of both in the same time
    assert both.running.per_hour == pytest.approx(21 * 3600 / 105, rel=1e-3)
    one = inspections.stats(InspectionFilter(created_from=T + timedelta(seconds=300)), Bucket.MINUTE)
    assert one.inspected == 1 and one.running.per_hour is None


def test_the_api_reports_the_rate_while_running_and_the_bucket_auto_chose(tmp_path: Path):
    engine = open_database(f"sqlite:///{tmp_path / 'twinspect.db'}")
    clock = Clock(T)
    inspections = InspectionStore(engine, EvidenceStore(tmp_path / "evidence"), clock=clock)
    _fill(inspections, clock, T, RUN, PITCH_S, "L1")
    tokens = TokenStore(engine)
    token = tokens.create(Role.QA, "alice")[1]
    services = Services(engine=None, sync=None, tokens=tokens, inspections=inspections, class_names=DEEPPCB_CLASSES)
    try:
        with TestClient(create_app(services)) as client:
            since = (T - timedelta(hours=23)).isoformat()  # the dashboard's "last 24 hours"
            r = client.get(
                "/api/v1/stats", params={"from": since, "bucket": "auto"}, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 200, r.text
            body = r.json()
    finally:
        engine.dispose()
    assert body["throughput_per_hour"] == pytest.approx(1500, rel=1e-3)
    assert body["running_seconds"] == pytest.approx((RUN - 1) * PITCH_S, abs=0.01)
    assert body["idle_gap_seconds"] == IDLE_GAP_S and body["bucket"] == "minute"
    assert len(body["trend"]) == 10 and sum(t["inspected"] for t in body["trend"]) == RUN
    full = [t for t in body["trend"] if t["running_seconds"] >= 55]
    assert len(full) >= 8 and all(t["throughput_per_hour"] == pytest.approx(1500, rel=0.05) for t in full)
