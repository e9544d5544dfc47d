"""/api/v1/recipes, /api/v1/goldens and /api/v1/lines/{line}/recipe: roles, reasons, events, twin."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routers.recipes import MAX_GOLDEN_BYTES
from api.services import Services
from api.tokens import TokenStore
from inspection.reference.recipe_store import RecipeStore
from inspection.store import open_database
from sync.config import SyncSettings
from sync.service import SyncService
from tests.conftest import draw_board


@dataclass
class FakeEngine:
    """A running engine (api.services.EngineView) on line-1 that records recipe switches."""

    switched: list[str | None] = field(default_factory=list)

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> dict[str, Any]:
        return {"line_id": "line-1", "line_state": "running", "cameras": [], "counters": {}, "recent": []}

    def set_line_recipe(self, recipe: str | None) -> None:
        self.switched.append(recipe)


@dataclass
class Api:
    client: TestClient
    store: RecipeStore
    sync: SyncService
    engine: FakeEngine | None
    tokens: dict[str, dict[str, str]]

    def events(self) -> list[dict[str, Any]]:
        page = self.client.get("/api/v1/events", params={"type": "line.recipe_changed"}, headers=self.tokens["twin"])
        return [e["data"] for e in page.json()["events"]]

    def twin_recipe(self) -> dict[str, Any]:
        doc = json.loads(self.client.get("/api/v1/twin/line-1", headers=self.tokens["twin"]).text)
        return doc["features"]["recipe"]["properties"]  # type: ignore[no-any-return]


def png(seed: int, size: tuple[int, int] = (96, 128)) -> bytes:
    grey = draw_board(np.random.default_rng(seed), max(size))[: size[0], : size[1]]
    return bytes(cv2.imencode(".png", np.ascontiguousarray(grey))[1].tobytes())


def _build(tmp_path: Path, engine: FakeEngine | None) -> Iterator[Api]:
    db = open_database(f"sqlite:///{tmp_path / 'twinspect.db'}")
    sync = SyncService.open(db, SyncSettings(edge_id="edge-t"), forwarders=False)
    tokens = TokenStore(db)
    store = RecipeStore(db, tmp_path / "goldens")
    app = create_app(Services(engine, sync, tokens, recipes=store))
    headers = {
        role: {"Authorization": f"Bearer {tokens.create(role, f'{role}-user')[1]}"}
        for role in ("admin", "ml", "qa", "twin", "camera")
    }
    with TestClient(app) as client:
        yield Api(client, store, sync, engine, headers)
    db.dispose()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from _build(tmp_path, FakeEngine())


def post(api: Api, name: str, golden: bytes, role: str = "ml", **form: str) -> Any:
    return api.client.post(
        "/api/v1/recipes",
        data={"name": name, **form},
        files={"golden": ("golden.png", golden, "image/png")},
        headers=api.tokens[role],
    )


def test_add_list_show_and_fetch_the_golden(api: Api):
    data = png(1)
    r = post(
        api,
        "pcb-a",
        data,
        masks='[{"x1": 2, "y1": 3, "x2": 40, "y2": 20, "label": "sticker"}]',
        align='{"method": "features", "min_score": 0.7}',
        description="rev A",
    )
    assert r.status_code == 201, r.text
    sha = hashlib.sha256(data).hexdigest()
    body = r.json()
    assert (body["name"], body["golden_sha256"], body["width"], body["height"]) == ("pcb-a", sha, 128, 96)
    assert body["masks"] == [{"x1": 2, "y1": 3, "x2": 40, "y2": 20, "label": "sticker"}]
    assert body["align"]["method"] == "features" and body["created_by"] == "ml-user"
    for role in ("qa", "twin", "ml", "admin"):
        assert [x["name"] for x in api.client.get("/api/v1/recipes", headers=api.tokens[role]).json()["items"]] == [
            "pcb-a"
        ]
    assert api.client.get("/api/v1/recipes/pcb-a", headers=api.tokens["qa"]).json() == body
    g = api.client.get("/api/v1/recipes/pcb-a/golden", headers=api.tokens["qa"])
    assert g.status_code == 200 and g.content == data and g.headers["content-type"] == "image/png"
    assert g.headers["etag"] == f'"{sha}"' and g.headers["content-location"] == f"/api/v1/goldens/{sha}"
    again = api.client.get("/api/v1/recipes/pcb-a/golden", headers={**api.tokens["qa"], "If-None-Match": f'"{sha}"'})
    assert again.status_code == 304 and again.content == b""
    by_sha = api.client.get(body["golden_url"], headers=api.tokens["twin"])
    assert by_sha.content == data and "immutable" in by_sha.headers["cache-control"]


def test_roles(api: Api):
    assert post(api, "pcb-q", png(2), role="qa").status_code == 403
    assert post(api, "pcb-t", png(2), role="twin").status_code == 403
    assert post(api, "pcb-admin", png(2), role="admin").status_code == 201
    assert api.client.get("/api/v1/recipes", headers=api.tokens["camera"]).status_code == 403
    assert api.client.get("/api/v1/recipes").status_code == 401
    r = api.client.put("/api/v1/lines/line-1/recipe", json={"recipe": "pcb-admin"}, headers=api.tokens["qa"])
    assert r.status_code == 403 and "ml" in r.json()["detail"]
    assert [r.name for r in api.store.list()] == ["pcb-admin"]


def test_bad_input_gets_a_4xx_with_the_reason_and_changes_nothing(api: Api):
    good = png(3)
    assert post(api, "pcb", good).status_code == 201
    before = api.store.list()
    cases = [
        (post(api, "pcb", png(4)), 409, "'pcb': a recipe of that name exists"),
        (post(api, "broken", good[: len(good) // 2]), 422, "golden (golden.png): corrupt PNG image (truncated)"),
        (post(api, "broken", b"plain text"), 422, "not a JPEG, PNG, BMP or TIFF"),
        (post(api, "bad name", good), 422, "name 'bad name'"),
        (post(api, "masked", good, masks="[{oops"), 422, "masks: Invalid JSON"),
        (
            post(api, "masked", good, masks='[{"x1": 0, "y1": 0, "x2": 500, "y2": 10}]'),
            422,
            "masks[0]: (0,0)-(500,10) is empty or outside the 128x96 golden image",
        ),
        (post(api, "aligned", good, align='{"method": "magic"}'), 422, "align.method"),
        (api.client.get("/api/v1/recipes/nope", headers=api.tokens["qa"]), 404, "recipe 'nope': no such recipe"),
        (api.client.get(f"/api/v1/goldens/{'0' * 64}", headers=api.tokens["qa"]), 404, "no such file"),
        (
            api.client.put(
                "/api/v1/recipes/nope", files={"golden": ("g.png", good, "image/png")}, headers=api.tokens["ml"]
            ),
            404,
            "recipe 'nope': no such recipe",
        ),
        (
            api.client.put(
                "/api/v1/recipes/pcb",
                files={"golden": ("small.png", png(5, (64, 128)), "image/png")},
                headers=api.tokens["ml"],
            ),
            409,
            "small.png): 128x64 image for recipe 'pcb', whose golden is 128x96",
        ),
    ]
    for response, status, reason in cases:
        assert response.status_code == status, (status, response.text)
        assert reason in response.json()["detail"], (reason, response.text)
    assert api.client.get("/api/v1/goldens/not-a-sha", headers=api.tokens["qa"]).status_code == 422
    assert api.store.list() == before
    assert api.events() == [] and api.engine is not None and api.engine.switched == []


def test_an_upload_over_the_cap_is_refused_before_it_is_read(api: Api):
    big = b"\x89PNG\r\n\x1a\n" + b"\x00" * MAX_GOLDEN_BYTES
    r = post(api, "huge", big)
    assert r.status_code == 413 and "capped at 32 MiB" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'--b\r\nContent-Disposition: form-data; name="golden"; filename="g.png"\r\n\r\n'
        for _ in range(MAX_GOLDEN_BYTES // (1 << 20) + 2):
            yield b"\x00" * (1 << 20)

    r = api.client.post(
        "/api/v1/recipes",
        content=chunks(),
        headers={**api.tokens["ml"], "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 413 and "capped at 32 MiB" in r.json()["detail"]
    assert api.store.list() == []


def test_replace_keeps_the_old_golden_and_the_line_twin_follows(api: Api):
    first = post(api, "pcb", png(6), description="rev A").json()
    r = api.client.put("/api/v1/lines/line-1/recipe", json={"recipe": "pcb"}, headers=api.tokens["ml"])
    assert r.status_code == 200, r.text
    assert r.json() == {
        "line_id": "line-1",
        "recipe": "pcb",
        "previous": None,
        "golden_sha256": first["golden_sha256"],
        "changed_by": "ml-user",
        "offset": 1,
    }
    new = png(7)
    r = api.client.put(
        "/api/v1/recipes/pcb",
        files={"golden": ("b.png", new, "image/png")},
        data={"masks": '[{"x1": 0, "y1": 0, "x2": 8, "y2": 8}]'},
        headers=api.tokens["ml"],
    )
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["golden_sha256"] == hashlib.sha256(new).hexdigest() != first["golden_sha256"]
    assert second["description"] == "rev A" and len(second["masks"]) == 1  # omitted fields keep their values
    assert api.twin_recipe()["goldenSha256"] == second["golden_sha256"]  # the line's boards now meet the new one
    old = api.client.get(first["golden_url"], headers=api.tokens["qa"])
    assert old.status_code == 200 and hashlib.sha256(old.content).hexdigest() == first["golden_sha256"]
    r = api.client.put("/api/v1/recipes/pcb", data={"description": "rev B"}, headers=api.tokens["ml"])
    assert r.json()["golden_sha256"] == second["golden_sha256"] and r.json()["description"] == "rev B"
    assert len(api.events()) == 2  # the same golden again: no new event


def test_changing_the_line_recipe_switches_the_engine_emits_an_event_and_updates_the_twin(api: Api):
    a, b = post(api, "pcb-a", png(8)).json(), post(api, "pcb-b", png(9)).json()
    for name in ("pcb-a", "pcb-b"):
        r = api.client.put("/api/v1/lines/line-1/recipe", json={"recipe": name}, headers=api.tokens["ml"])
        assert r.status_code == 200, r.text
    assert api.engine is not None and api.engine.switched == ["pcb-a", "pcb-b"]
    assert api.events() == [
        {
            "line_id": "line-1",
            "recipe": "pcb-a",
            "previous": None,
            "golden_sha256": a["golden_sha256"],
            "changed_by": "ml-user",
        },
        {
            "line_id": "line-1",
            "recipe": "pcb-b",
            "previous": "pcb-a",
            "golden_sha256": b["golden_sha256"],
            "changed_by": "ml-user",
        },
    ]
    twin = api.twin_recipe()
    assert (twin["name"], twin["goldenSha256"], twin["previous"], twin["changedBy"]) == (
        "pcb-b",
        b["golden_sha256"],
        "pcb-a",
        "ml-user",
    )
    unknown = api.client.put("/api/v1/lines/line-1/recipe", json={"recipe": "nope"}, headers=api.tokens["ml"])
    assert unknown.status_code == 404 and "'nope': no such recipe" in unknown.json()["detail"]
    other = api.client.put("/api/v1/lines/line-7/recipe", json={"recipe": "pcb-a"}, headers=api.tokens["ml"])
    assert other.status_code == 404 and "runs line 'line-1'" in other.json()["detail"]
    bad = api.client.put("/api/v1/lines/line-1/recipe", json={"recipe": "x y"}, headers=api.tokens["ml"])
    assert bad.status_code == 422
    assert api.engine.switched == ["pcb-a", "pcb-b"] and len(api.events()) == 2  # none of those changed anything
    unset = api.client.put("/api/v1/lines/line-1/recipe", json={"recipe": None}, headers=api.tokens["admin"])
    assert unset.status_code == 200 and unset.json()["golden_sha256"] is None
    assert api.engine.switched[-1] is None and api.twin_recipe()["name"] is None


def test_a_process_without_a_line_answers_409(tmp_path: Path):
    for hub in _build(tmp_path, None):
        assert post(hub, "pcb", png(10)).status_code == 201  # a hub may keep recipes
        r = hub.client.put("/api/v1/lines/line-1/recipe", json={"recipe": "pcb"}, headers=hub.tokens["ml"])
        assert r.status_code == 409 and "runs no inspection line" in r.json()["detail"]
        assert hub.events() == []


def test_a_tiff_golden_is_kept_as_uploaded_and_shown_to_browsers_as_png(api: Api):
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (48, 1))  # 48x64, every pixel value known
    tiff = cv2.imencode(".tiff", grey)[1].tobytes()
    r = post(api, "tiff-board", tiff)
    assert r.status_code == 201, r.text
    sha = r.json()["golden_sha256"]
    stored = api.client.get(f"/api/v1/goldens/{sha}", headers=api.tokens["qa"])
    assert stored.status_code == 200 and stored.headers["content-type"] == "image/tiff" and stored.content == tiff
    shown = api.client.get(f"/api/v1/goldens/{sha}?display=true", headers=api.tokens["qa"])
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
    assert shown.headers["etag"] != stored.headers["etag"]
    pixels = cv2.imdecode(np.frombuffer(shown.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(pixels, grey)
    png_sha = post(api, "png-board", png(2)).json()["golden_sha256"]  # a PNG (or JPEG, BMP) comes as stored
    as_is = api.client.get(f"/api/v1/goldens/{png_sha}?display=true", headers=api.tokens["qa"])
    assert as_is.headers["content-type"] == "image/png" and hashlib.sha256(as_is.content).hexdigest() == png_sha
