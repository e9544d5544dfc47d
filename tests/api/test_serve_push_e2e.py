"""A push camera on the real engine: frames POSTed over HTTP are tracked and inspected."""

from __future__ import annotations

import time

import cv2
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.live_view import LiveView
from api.runtime import build_engine
from api.services import Services
from api.settings import load_settings
from camera.simulated import LineMotion, LineScene, replay_sequence
from inspection.ml.datasets.boards import board_pool
from tests.conftest import bearer_for, real_board_subset


@pytest.fixture
def served(tmp_path, token_store, plain_model):
    boards = real_board_subset(tmp_path / "boards", 2, offset=80)
    cfg = tmp_path / "twinspect.yaml"
    cfg.write_text(f"""
data_dir: {tmp_path / "data"}
models:
  defect: {{weights: {plain_model}}}  # a plain-image model: a push line with no recipe
line:
  line_id: push-line
  cameras:
    - {{type: push, id: door, max_bytes: 3000000}}
  camera_tokens: {{door: door-token}}
  parts:
    trigger: {{type: line, start: [640, 0], end: [640, 720], direction: right_to_left}}
""")
    engine = build_engine(load_settings(cfg))
    app = create_app(Services(LiveView(engine), tokens=token_store, max_push_bytes=3_000_000))
    with TestClient(app, headers=bearer_for(token_store, "qa")) as client:
        yield client, boards, engine


def test_pushed_frames_are_inspected_and_stored(served):
    client, boards, engine = served
    pool = board_pool(boards)
    sequence = replay_sequence(pool, 0.5, seed=1)
    scene = LineScene(pool, motion=LineMotion(fps=15), sequence=sequence)
    pushed = 0
    while (step := scene.step()) is not None:
        ok, jpeg = cv2.imencode(".jpg", step[0], [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        r = client.post(
            "/api/v1/cameras/door/frames",
            content=jpeg.tobytes(),
            headers={"Authorization": "Bearer door-token", "Content-Type": "image/jpeg"},
        )
        assert r.status_code == 202, r.text
        assert r.json()["seq"] == pushed
        pushed += 1
        time.sleep(1 / 30)  # a camera at 30 fps; the engine keeps up
    deadline = time.monotonic() + 60
    status = client.get("/api/v1/live/status").json()
    while status["counters"]["inspected"] < len(sequence) and time.monotonic() < deadline:
        time.sleep(0.5)
        status = client.get("/api/v1/live/status").json()
    assert status["counters"]["inspected"] == len(sequence) == 4
    assert status["cameras"][0]["camera_id"] == "door" and status["cameras"][0]["frames_in"] == pushed
    assert engine.drain(10) and engine.recorder is not None and engine.recorder.inspections is not None
    assert sum(engine.recorder.inspections.counts().values()) == 4
    part_id = status["recent"][0]["part_id"]
    r = client.get(f"/api/v1/live/parts/{part_id}/evidence.jpg")
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8"
    r = client.get("/api/v1/live/cameras/door/frame.jpg")
    assert r.status_code == 200
    metrics = client.get("/metrics").text
    assert 'twinspect_boards_inspected_total{camera="door"} 4.0' in metrics
