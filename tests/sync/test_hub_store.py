"""The hub keeps the QA data: edges' inspections and their evidence JPEGs, through a real nats-server.

Each test uses a stream, subject prefix, durable and evidence bucket of its own on the shared
server (deleted at the end). The edge side is what an edge runs: an InspectionStore with its
EvidenceStore, the EngineRecorder's part.inspected drafts on its event log, a NatsForwarder that
puts the evidence into the object store bucket; the hub side is a Hub with an
InspectionProjection on a database of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from sqlalchemy import Engine

from api.app import create_app
from api.services import Services
from api.tokens import TokenStore
from inspection.core.detections import Detections
from inspection.core.outcome import Outcome
from inspection.pipeline.events import Inspected
from inspection.pipeline.recording import ModelInfo
from inspection.pipeline.verdict import ReferenceInfo, Verdict, inspection_record
from inspection.store import EvidenceStore, InspectionRecord, InspectionStore, StoredInspection, open_database
from sync.config import NatsSettings, SyncSettings
from sync.events import Event
from sync.hub import Hub
from sync.hub_store import InspectionProjection
from sync.log import EventLog
from sync.nats import NatsForwarder, subject
from sync.recorder import EngineRecorder
from sync.service import SyncService
from sync.twin import TwinStore
from tests.conftest import bearer_for, wait_until
from tests.sync.conftest import draft
from tests.sync.jetstream import delete_stream, publish, settings_for, with_client

SHARED_URL = "nats://127.0.0.1:4222"
CLASSES = ("open", "short", "mousebite", "spur", "copper", "pin-hole")
LINE = "line-h"
T_WALL = 1_795_000_000.25  # capture times: whole milliseconds, so the event's time is exact


@pytest.fixture
def settings() -> Iterator[NatsSettings]:
    value = settings_for(SHARED_URL)
    value = value.model_copy(update={"evidence_bucket": f"EV_{value.stream}"})
    yield value
    delete_stream(value)

    async def drop_bucket(nc: Client) -> None:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_object_store(value.evidence_bucket)

    with_client(value, drop_bucket)


@dataclass
class Side:
    """One box's storage: event log, twin, inspections with their evidence folder."""

    db: Engine
    log: EventLog
    twins: TwinStore
    store: InspectionStore
    evidence_dir: Path


def open_side(root: Path) -> Side:
    db = open_database(f"sqlite:///{root}.db")
    event_log = EventLog(db)
    evidence_dir = root / "evidence"
    return Side(db, event_log, TwinStore(event_log), InspectionStore(db, EvidenceStore(evidence_dir)), evidence_dir)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Side]:
    side = open_side(tmp_path / "edge")
    yield side
    side.db.dispose()


@pytest.fixture
def hub_side(tmp_path: Path) -> Iterator[Side]:
    side = open_side(tmp_path / "hub")
    yield side
    side.db.dispose()


def crop_image(seed: int, size: tuple[int, int]) -> np.ndarray:
    """A board-like crop: green with copper tracks and pads, a little noise."""
    h, w = size
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (40, 110 + seed * 10, 30)
    for y in range(6, h, 14):
        img[y : y + 3, 4 : w - 4] = (60, 160, 200)
    img[h // 2 - 4 : h // 2 + 4, w // 3 - 4 : w // 3 + 4] = (180, 200, 220)
    noise = rng.integers(0, 12, img.shape, dtype=np.uint8)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def make_verdict(i: int, outcome: Outcome, boxes: list[tuple[float, float, float, float, float, int]]) -> Verdict:
    """Box numbers are exact in float32 and at one decimal, as the event writes them."""
    size = (48 + 8 * i, 64 + 8 * i)
    dets = Detections(
        np.array([b[:4] for b in boxes], np.float32).reshape(-1, 4),
        np.array([b[4] for b in boxes], np.float32),
        np.array([b[5] for b in boxes], np.int64),
        CLASSES,
    )
    return Verdict(
        part_id=f"run1-cam1-{i}-{100 + i}",
        camera_id="cam1",
        track_id=i,
        outcome=outcome,
        defects=dets,
        crop=crop_image(i, size),
        board_xyxy=np.array([100.5, 50.0, 100.5 + size[1], 50.0 + size[0]], np.float32),
        frame_seq=100 + i,
        t_capture=12.5,
        reasons=("open near U3",) if boxes else (),
    )


VERDICTS = [
    (Outcome.FAIL, [(10.5, 12.0, 22.5, 20.0, 0.875, 0), (30.0, 8.5, 36.0, 14.0, 0.5, 3)]),
    (Outcome.PASS, []),
    (Outcome.UNCERTAIN, [(4.0, 4.0, 12.5, 10.0, 0.375, 5)]),
]


def inspect_on_edge(
    edge: Side, n: int = 3, start: int = 0, keep_evidence: bool = True, reference: ReferenceInfo | None = None
) -> tuple[list[InspectionRecord], list[Event]]:
    """What the engine does: store the inspections (evidence first), append their part.inspected events."""
    recorder = EngineRecorder(edge.log, edge.twins, LINE, "edge-h", {"defect": ModelInfo("defect-yolov8n", "1")})
    records, drafts = [], []
    for i in range(start, start + n):
        outcome, boxes = VERDICTS[i % len(VERDICTS)]
        verdict = dataclasses.replace(make_verdict(i, outcome, boxes), reference=reference)
        t_wall = T_WALL + i
        evidence = edge.store.evidence if keep_evidence else EvidenceStore(edge.evidence_dir.parent / "elsewhere")
        rec = inspection_record(
            verdict,
            line_id=LINE,
            model_name="defect-yolov8n",
            model_version="1",
            captured_at=datetime.fromtimestamp(t_wall, UTC),
            evidence=evidence,
        )
        records.append(rec)
        drafts += [
            draft("part.entered", i, LINE, part_id=verdict.part_id),
            recorder.inspected_draft(Inspected(verdict, None, 3, 0.042, t_wall), rec),
        ]
    edge.store.save_many(records)
    return records, edge.log.append(drafts)


def forward(edge: Side, settings: NatsSettings, goldens_dir: Path | None = None) -> NatsForwarder:
    forwarder = NatsForwarder(
        edge.log, settings, "edge-h", batch=64, evidence_dir=edge.evidence_dir, goldens_dir=goldens_dir
    )
    forwarder.start()
    try:
        assert forwarder.drain(20.0), f"lag {forwarder.lag}"
    finally:
        forwarder.stop()
    return forwarder


@contextlib.contextmanager
def running_hub(hub_side: Side, settings: NatsSettings, **kwargs: Any) -> Iterator[tuple[Hub, InspectionProjection]]:
    projection = InspectionProjection(hub_side.store, settings, **kwargs)
    hub = Hub(hub_side.log, settings, fetch_timeout_s=0.3, projection=projection)
    hub.start()
    try:
        yield hub, projection
    finally:
        hub.stop()


def stored(side: Side) -> list[StoredInspection]:
    return sorted(side.store.iterate(), key=lambda s: s.part_id)


def assert_same(hub: StoredInspection, rec: InspectionRecord) -> None:
    assert (hub.id, hub.part_id, hub.line_id, hub.camera_id, hub.track_id, hub.frame_seq) == (
        rec.id,
        rec.part_id,
        rec.line_id,
        rec.camera_id,
        rec.track_id,
        rec.frame_seq,
    )
    assert (hub.outcome, hub.reasons, hub.model_name, hub.model_version) == (
        rec.outcome,
        rec.reasons,
        rec.model_name,
        rec.model_version,
    )
    assert (hub.crop_width, hub.crop_height, hub.board_xyxy) == (rec.crop_width, rec.crop_height, rec.board_xyxy)
    assert hub.captured_at == rec.captured_at
    assert hub.evidence_sha256 == rec.evidence_sha256
    assert hub.boxes == rec.boxes  # box ids are not compared


def test_hub_stores_edge_inspections_with_their_evidence_once(
    settings: NatsSettings, edge: Side, hub_side: Side
) -> None:
    records, events = inspect_on_edge(edge)
    inspected = [e for e in events if e.type == "part.inspected"]
    data = inspected[0].cloudevent()["data"]
    assert data["evidence_sha256"] == records[0].evidence_sha256
    assert data["crop"] == {"width": records[0].crop_width, "height": records[0].crop_height}

    forwarder = forward(edge, settings)
    assert forwarder.evidence_put == 3 and forwarder.evidence_missing == 0

    with running_hub(hub_side, settings) as (hub, projection):
        assert wait_until(lambda: projection.fetched == 3, 15), (projection.stored, projection.pending)
        assert hub.ingested == len(events) and projection.stored == 3
        got = stored(hub_side)
        assert len(got) == 3
        for mine, theirs in zip(got, sorted(records, key=lambda r: r.part_id), strict=True):
            assert_same(mine, theirs)
            assert hub_side.store.evidence.get(mine.evidence_sha256) == edge.store.evidence.get(theirs.evidence_sha256)

        # the same events in the stream again (another copy, not dropped by JetStream): no new rows
        publish(settings, [(subject(settings, e), e.body.encode(), str(uuid.uuid4())) for e in events])
        assert wait_until(lambda: hub.duplicates == len(events), 10), hub.duplicates
        assert projection.known == 3 and projection.stored == 3 and projection.invalid == 0

    # a forwarder re-sending everything (lost cursor) puts no evidence again, adds nothing
    edge.log.set_cursor(forwarder.name, 0)
    again = forward(edge, settings)
    assert again.duplicates == len(events) and again.evidence_put == 0
    assert len(stored(hub_side)) == 3 and hub_side.store.counts()[Outcome.FAIL] == 1
    assert projection.save(inspected) == [] and len(stored(hub_side)) == 3  # a direct re-apply: nothing


def test_rows_come_even_after_a_crash_between_storing_the_events_and_their_inspections(
    settings: NatsSettings, edge: Side, hub_side: Side
) -> None:
    records, events = inspect_on_edge(edge)
    forward(edge, settings)
    hub_side.log.ingest(events)  # as if the hub crashed after storing the events, before its projection and acks
    with running_hub(hub_side, settings) as (hub, projection):
        assert wait_until(lambda: projection.fetched == 3, 15), (projection.stored, projection.pending)
        assert hub.ingested == 0 and hub.duplicates == len(events)
    assert [s.id for s in stored(hub_side)] == [r.id for r in sorted(records, key=lambda r: r.part_id)]


def test_an_image_that_arrives_late_is_fetched_on_a_retry(settings: NatsSettings, edge: Side, hub_side: Side) -> None:
    _, first = inspect_on_edge(edge, n=2)
    late, events = inspect_on_edge(edge, n=1, start=2, keep_evidence=False)  # its JPEG is not on the edge's disk
    forwarder = forward(edge, settings)
    assert forwarder.evidence_put == 2 and forwarder.evidence_missing == 1  # logged, the feed went on
    sha = late[0].evidence_sha256

    with running_hub(hub_side, settings, retry_s=0.1, retry_max_s=0.3) as (hub, projection):
        assert wait_until(lambda: projection.fetched == 2 and projection.stored == 3, 15)
        assert hub.ingested == len(first) + len(events)
        assert not hub_side.store.evidence.exists(sha) and projection.pending == 1
        assert hub_side.store.get(late[0].id).evidence_sha256 == sha  # the row is there meanwhile

        jpeg = EvidenceStore(edge.evidence_dir.parent / "elsewhere").get(sha)

        async def put_late(nc: Client) -> None:
            await (await nc.jetstream().object_store(settings.evidence_bucket)).put(sha, jpeg)

        with_client(settings, put_late)
        # the file lands before the projection counts it (sync/hub_store.py): wait for the count too
        assert wait_until(lambda: projection.fetched + projection.given_up == 3, 10)
        assert hub_side.store.evidence.exists(sha)
        assert hub_side.store.evidence.get(sha) == jpeg
        assert projection.fetched == 3 and projection.pending == 0 and projection.given_up == 0


def test_hub_api_lists_inspections_serves_evidence_and_reviews_without_touching_edge_streams(
    settings: NatsSettings, edge: Side, hub_side: Side
) -> None:
    records, _ = inspect_on_edge(edge)
    forward(edge, settings)
    with running_hub(hub_side, settings) as (_, projection):
        assert wait_until(lambda: projection.fetched == 3, 15)

    sync = SyncService(hub_side.log, hub_side.twins, SyncSettings(edge_id="hub"))
    tokens = TokenStore(hub_side.db)
    app = create_app(
        Services(
            engine=None, sync=sync, tokens=tokens, inspections=hub_side.store, class_names=CLASSES, review_events=False
        )
    )
    head = hub_side.log.head
    with TestClient(app, headers=bearer_for(tokens, "qa")) as client:
        page = client.get("/api/v1/inspections").json()
        assert sorted(i["id"] for i in page["items"]) == sorted(r.id for r in records)
        fail = next(r for r in records if r.outcome is Outcome.FAIL)
        detail = client.get(f"/api/v1/inspections/{fail.id}").json()
        assert detail["verdict"] == "fail" and detail["crop"] == {"width": fail.crop_width, "height": fail.crop_height}
        assert [b["xyxy"] for b in detail["boxes"]] == [list(b.xyxy) for b in fail.boxes]
        r = client.get(f"/api/v1/inspections/{fail.id}/evidence.jpg")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert r.content == edge.store.evidence.get(fail.evidence_sha256)

        r = client.post(f"/api/v1/inspections/{fail.id}/review", json={"action": "reject"})
        assert r.status_code == 200, r.text
        assert r.json()["verdict"] == "pass"
        assert hub_side.log.head == head  # no review.corrected on the edge's line stream

        unknown = client.get(f"/api/v1/inspections/{uuid.uuid4()}/evidence.jpg")
        assert unknown.status_code == 404


def test_old_events_without_evidence_make_no_rows(hub_side: Side, settings: NatsSettings) -> None:
    projection = InspectionProjection(hub_side.store, settings)
    events = hub_side.log.append([draft("part.inspected", i, LINE, verdict="fail") for i in range(3)])
    assert asyncio.run(_apply(projection, events)) == 0
    assert projection.stored == 0 and projection.invalid == 0 and projection.pending == 0


async def _apply(projection: InspectionProjection, events: list[Event]) -> int:
    await projection.apply(events)
    return projection.stored


def test_golden_images_travel_with_the_evidence_so_qa_on_the_hub_sees_the_pair(
    settings: NatsSettings, edge: Side, hub_side: Side, tmp_path: Path
) -> None:
    import cv2

    from inspection.reference.goldens import GoldenFiles, check_golden

    png = cv2.imencode(".png", crop_image(7, (64, 96)))[1].tobytes()
    golden = check_golden(png, "test golden")
    GoldenFiles(tmp_path / "edge-goldens").put_many([golden])
    ref = ReferenceInfo("board-a", golden.sha256, 0.97, True)
    records, _ = inspect_on_edge(edge, n=2, reference=ref)  # two boards of one product: one golden
    gone = ReferenceInfo("board-b", "cd" * 32, 0.95, True)  # its golden is not in the edge's folder
    inspect_on_edge(edge, n=1, start=2, reference=gone)

    forwarder = forward(edge, settings, goldens_dir=tmp_path / "edge-goldens")
    assert (forwarder.evidence_put, forwarder.goldens_put, forwarder.goldens_missing) == (3, 1, 1)

    hub_goldens = GoldenFiles(tmp_path / "hub-goldens")
    with running_hub(hub_side, settings, retry_s=0.1, retry_max_s=0.3, goldens=hub_goldens) as (_, projection):
        assert wait_until(lambda: projection.fetched == 3 and projection.goldens_fetched == 1, 15), (
            projection.fetched,
            projection.goldens_fetched,
            projection.pending,
        )
        assert projection.pending == 1  # board-b's golden: not in the bucket, tried again until given up
    assert hub_goldens.read(golden.sha256) == (png, "image/png")

    sync = SyncService(hub_side.log, hub_side.twins, SyncSettings(edge_id="hub"))
    tokens = TokenStore(hub_side.db)
    services = Services(engine=None, sync=sync, tokens=tokens, inspections=hub_side.store, goldens=hub_goldens)
    with TestClient(create_app(services), headers=bearer_for(tokens, "qa")) as client:
        detail = client.get(f"/api/v1/inspections/{records[0].id}").json()
        assert detail["golden_sha256"] == golden.sha256 and detail["golden_aligned"] is True
        r = client.get(detail["golden_url"])
        assert r.status_code == 200 and r.content == png and r.headers["content-type"] == "image/png"
        assert client.get(f"/api/v1/goldens/{'cd' * 32}").status_code == 404
