"""The live API and push route, on a fake engine view (the real engine is tested in test_engine_e2e)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from camera.errors import FrameRejected, UnknownCamera
from tests.conftest import bearer_for


class FakeView:
    def __init__(self) -> None:
        self.started = self.stopped = False
        self.pushed: list[tuple[str, int]] = []

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def status(self) -> dict[str, Any]:
        return {"line_id": "l1", "line_state": "running", "counters": {"boards_seen": 3}, "cameras": [], "recent": []}

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        return b"\xff\xd8jpeg" if camera_id == "cam1" else None

    def evidence_jpeg(self, part_id: str) -> bytes | None:
        return None

    def push(self, camera_id: str, data: bytes, content_type: str | None) -> int:
        if camera_id != "door":
            raise UnknownCamera(f"camera {camera_id!r}: no push camera with this id")
        if not data.startswith(b"\x89PNG"):
            raise FrameRejected("body is not a JPEG or PNG image")
        self.pushed.append((camera_id, len(data)))
        return len(self.pushed) - 1

    def camera_token_ok(self, camera_id: str, token: str | None) -> bool:
        return token == "s3cret"

    def push_limit(self, camera_id: str) -> int | None:
        return None  # Services.max_push_bytes

    def metrics(self) -> bytes:
        return b"twinspect_boards_seen_total 3.0\n"


@pytest.fixture
def client(token_store):
    view = FakeView()
    app = create_app(Services(view, tokens=token_store, max_push_bytes=50_000))
    with TestClient(app, headers=bearer_for(token_store, "qa")) as c:
        yield c, view
    assert view.stopped


def png() -> bytes:
    ok, buf = cv2.imencode(".png", np.zeros((16, 16, 3), np.uint8))
    assert ok
    return buf.tobytes()


def test_lifespan_starts_engine_and_serves_status(client):
    c, view = client
    assert view.started
    r = c.get("/api/v1/live/status")
    assert r.status_code == 200 and r.json()["counters"]["boards_seen"] == 3


def test_live_page_and_metrics(client):
    c, _ = client
    r = c.get("/live")
    assert r.status_code == 200 and "twinspect" in r.text and "/static/live.js" in r.text
    assert c.get("/static/live.js").status_code == 200
    r = c.get("/")  # the review queue is the home page
    assert r.status_code == 200 and "/static/queue.js" in r.text
    r = c.get("/metrics")
    assert r.status_code == 200 and "twinspect_boards_seen_total" in r.text


def test_latest_frame_and_unknown_camera(client):
    c, _ = client
    r = c.get("/api/v1/live/cameras/cam1/frame.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    r = c.get("/api/v1/live/cameras/nope/frame.jpg")
    assert r.status_code == 404 and "nope" in r.json()["detail"]


def test_push_accepts_an_image_with_the_camera_token(client):
    c, view = client
    r = c.post(
        "/api/v1/cameras/door/frames",
        content=png(),
        headers={"Authorization": "Bearer s3cret", "Content-Type": "image/png"},
    )
    assert r.status_code == 202 and r.json() == {"camera_id": "door", "seq": 0}
    assert view.pushed == [("door", len(png()))]


@pytest.mark.parametrize(
    ("headers", "body", "status", "reason"),
    [
        ({"Authorization": ""}, b"x", 401, "camera token"),
        ({"Authorization": "Bearer wrong"}, b"x", 401, "camera token"),
        ({"Authorization": "Bearer s3cret"}, b"not an image", 422, "not a JPEG or PNG"),
        ({"Authorization": "Bearer s3cret"}, b"\x89PNG" + b"0" * 60_000, 413, "over the limit"),
    ],
)
def test_push_rejections_say_why_and_store_nothing(client, headers, body, status, reason):
    c, view = client
    r = c.post("/api/v1/cameras/door/frames", content=body, headers=headers)
    assert r.status_code == status
    assert reason in r.json()["detail"]
    assert view.pushed == []


def test_push_to_unknown_camera_is_404(client):
    c, _ = client
    r = c.post("/api/v1/cameras/ghost/frames", content=png(), headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 404 and "ghost" in r.json()["detail"]
