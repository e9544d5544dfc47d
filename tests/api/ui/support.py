"""Support for the web UI tests: a populated app under uvicorn, a stand-in running line, page helpers.

The app runs under uvicorn in a thread, on an SQLite store holding inspections cut from
real DeepPCB boards (tests/api/conftest.py); the golden app also holds boards compared
with a golden image (tests/api/conftest.py add_reference_inspections). Screenshots land in
test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import uvicorn

from api.services import Services
from inspection.store import InspectionStore
from tests.api.conftest import (
    ReferenceInspections,
    add_reference_inspections,
    build_populated_app,
    dispose,
)
from tests.conftest import REPO, free_port, wait_until

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}
RISK_RANK = {"uncertain": 0, "fail": 1, "pass": 2}

TRANSFORM = re.compile(r"translate\(([-\d.e]+)px, ([-\d.e]+)px\) scale\(([-\d.e]+)\)")


class FakeLive:
    """A running line as the live page sees it (api.services.EngineView), on the stored crops."""

    def __init__(self, store: InspectionStore) -> None:
        self.items = store.list(limit=8).items
        self.store = store
        jpeg = store.evidence.get(self.items[0].evidence_sha256)
        crop = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert crop is not None
        frame = np.full((720, 1280, 3), 70, np.uint8)
        frame[200:520, :] = 40  # the conveyor
        small = cv2.resize(crop, (300, 257))
        frame[231:488, 480:780] = small
        cv2.rectangle(frame, (476, 227), (784, 492), (80, 200, 80), 3)
        cv2.line(frame, (640, 180), (640, 540), (0, 215, 255), 2)
        self.frame = cv2.imencode(".jpg", frame)[1].tobytes()
        self.faults: list[dict[str, Any]] = []  # what the line reports as failing (tests set it)

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> dict[str, Any]:
        cams = [
            {
                "camera_id": "cam1",
                "state": "running",
                "online": True,
                "fps": 24.8,
                "frames_in": 18231,
                "dropped": 3,
                "reconnects": 0,
                "last_error": None,
            },
            {
                "camera_id": "cam2",
                "state": "reconnecting",
                "online": False,
                "fps": 0.0,
                "frames_in": 9120,
                "dropped": 0,
                "reconnects": 4,
                "last_error": "connection refused",
            },
        ]
        recent = [
            {
                "part_id": it.part_id,
                "camera_id": it.camera_id,
                "outcome": it.outcome.value,
                "defects": [{"class_name": b.class_name, "confidence": b.confidence} for b in it.boxes],
                "reasons": list(it.reasons),
                "board": None,
                "t_wall": 0.0,
            }
            for it in self.items
        ]
        return {
            "line_id": "line-1",
            "line_state": "running",
            "cameras": cams,
            "recent": recent,
            "health": {"ready": not self.faults, "faults": list(self.faults)},
            "counters": {
                "boards_seen": 412,
                "inspected": 409,
                "uninspected": 3,
                "coverage": 409 / 412,
                "pass": 371,
                "fail": 30,
                "uncertain": 8,
                "fps": 24.8,
            },
        }

    def latest_jpeg(self, camera_id: str) -> bytes | None:
        return self.frame if camera_id in ("cam1", "cam2") else None

    def evidence_jpeg(self, part_id: str) -> bytes | None:
        it = next((i for i in self.items if i.part_id == part_id), None)
        return self.store.evidence.get(it.evidence_sha256) if it else None

    def metrics(self) -> bytes:
        return b""


@dataclass
class Server:
    url: str
    services: Services
    qa: str
    bob: str  # a second QA reviewer
    ref: ReferenceInspections | None = None

    @property
    def store(self) -> InspectionStore:
        assert self.services.inspections is not None
        return self.services.inspections


@contextmanager
def serving(tmp: Path, n: int, reference: bool = False) -> Iterator[Server]:
    """A populated app under uvicorn in a thread (with the golden-reference inspections if asked)."""
    app, services, _admin = build_populated_app(tmp, n)
    assert services.tokens is not None and services.inspections is not None
    ref = add_reference_inspections(services) if reference else None
    services.engine = FakeLive(services.inspections)  # type: ignore[assignment]
    _, qa = services.tokens.create("qa", "alice")
    _, bob = services.tokens.create("qa", "bob")
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, name="uvicorn-ui", daemon=True)
    thread.start()
    assert wait_until(lambda: srv.started, 20), "uvicorn did not start"
    yield Server(f"http://127.0.0.1:{port}", services, qa, bob, ref)
    srv.should_exit = True
    thread.join(10)
    dispose(services)


@contextmanager
def opened(browser: Any, url: str) -> Iterator[Any]:
    ctx = browser.new_context(viewport=VIEWPORT, base_url=url)
    ctx.set_default_timeout(8000)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    yield pg
    ctx.close()
    # the browser logs every 4xx: a 401 before the sign-in redirect and the 409 of the conflict
    # test are expected; anything else (a script error, a 404, a 422) is a bug
    expected = ("status of 401", "status of 409")
    unexpected = [e for e in errors if not any(x in e for x in expected)]
    assert unexpected == [], unexpected


def sign_in_api(page: Any, server: Server) -> None:
    r = page.context.request.post(f"{server.url}/api/v1/session", data={"token": server.qa})
    assert r.ok, r.text()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def no_horizontal_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= VIEWPORT["width"], f"{page.url}: {width}px wide"


def unlabelled_controls(page: Any) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
        .filter(e => e.offsetParent !== null || e.tagName === 'SELECT')
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
        .map(e => e.outerHTML.slice(0, 80))""")


def review_id(page: Any) -> str:
    m = re.search(r"/review/([^?]+)", page.url)
    assert m, page.url
    return m.group(1)


def wait_for_board(page: Any, inspection_id: str | None = None) -> str:
    if inspection_id is not None:
        page.wait_for_url(re.compile(rf"/review/{re.escape(inspection_id)}"))
    else:
        page.wait_for_url(re.compile(r"/review/"))
    current = review_id(page)
    page.wait_for_function("id => document.title.includes(' · Review') && location.pathname.endsWith(id)", arg=current)
    return current


def wait_for_next(page: Any, previous: str) -> str:
    page.wait_for_function("id => !location.pathname.endsWith(id)", arg=previous)
    return wait_for_board(page)
