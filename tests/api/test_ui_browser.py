"""The QA web UI in real headless Chromium (Playwright), against a real app on a populated store.

The app runs under uvicorn in a thread, on an SQLite store holding 30 inspections cut from
real DeepPCB boards (tests/api/conftest.py). A QA reviewer signs in through the form, opens
the risk-ordered queue and reviews three boards with the keyboard only; the test then reads
the database, the event log and the twin. A second app holds boards compared with a golden
image (tests/api/conftest.py add_reference_inspections): the pair in one zoom and pan, the
difference layer, the failed alignment. Screenshots land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from api.services import Services
from inspection.store import InspectionFilter, InspectionStore, ReviewStatus
from inspection.verdict import Outcome
from tests.api.conftest import (
    OPEN_CUT,
    SHORT_BAR,
    ReferenceInspections,
    add_reference_inspections,
    build_populated_app,
    dispose,
)
from tests.conftest import REPO, free_port, wait_until

sync_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")

CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}
RISK_RANK = {"uncertain": 0, "fail": 1, "pass": 2}

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs the Debian chromium at /usr/bin/chromium")


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

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status(self) -> dict[str, Any]:
        cams = [{"camera_id": "cam1", "state": "running", "online": True, "fps": 24.8, "frames_in": 18231,
                 "dropped": 3, "reconnects": 0, "last_error": None},
                {"camera_id": "cam2", "state": "reconnecting", "online": False, "fps": 0.0, "frames_in": 9120,
                 "dropped": 0, "reconnects": 4, "last_error": "connection refused"}]
        recent = [{"part_id": it.part_id, "camera_id": it.camera_id, "outcome": it.outcome.value,
                   "defects": [{"class_name": b.class_name, "confidence": b.confidence} for b in it.boxes],
                   "reasons": list(it.reasons), "board": None, "t_wall": 0.0} for it in self.items]
        return {"line_id": "line-1", "line_state": "running", "cameras": cams, "recent": recent,
                "counters": {"boards_seen": 412, "inspected": 409, "uninspected": 3, "coverage": 409 / 412,
                             "pass": 371, "fail": 30, "uncertain": 8, "fps": 24.8}}

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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("ui"), 30) as srv:
        yield srv


@pytest.fixture(scope="module")
def ref_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """3 plain inspections and 2 compared with a golden image (one aligned, one not)."""
    with serving(tmp_path_factory.mktemp("ui-golden"), 3, reference=True) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield b
        b.close()


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
    assert [e for e in errors if not any(x in e for x in expected)] == []


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    with opened(browser, server.url) as pg:
        yield pg


@pytest.fixture
def ref_page(browser: Any, ref_server: Server) -> Iterator[Any]:
    with opened(browser, ref_server.url) as pg:
        yield pg


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


def test_a_page_without_the_cookie_redirects_to_signin_and_back(page: Any, server: Server) -> None:
    page.goto("/dashboard?range=all")
    page.wait_for_url(re.compile(r"/signin\?next=%2Fdashboard%3Frange%3Dall"))
    page.fill("#token", "tsp_nope_nope")
    page.click("#signin-submit")
    page.wait_for_selector("#signin-error:has-text('Unknown or revoked')")
    page.fill("#token", server.qa)
    page.press("#token", "Enter")
    page.wait_for_url(re.compile(r"/dashboard\?range=all$"))
    page.wait_for_selector("#whoami:has-text('alice')")
    page.click("#signout")
    page.wait_for_url(re.compile(r"/signin$"))
    page.goto("/models")
    page.wait_for_url(re.compile(r"/signin\?next=%2Fmodels"))


def read_queue(page: Any) -> list[dict[str, Any]]:
    return page.evaluate("""() => [...document.querySelectorAll('#queue a.row')].map(a => ({
        id: a.dataset.id, verdict: [...a.classList].find(c => c !== 'row'),
        conf: Number(a.querySelector('.conf').textContent)}))""")


def test_review_three_boards_with_the_keyboard(page: Any, server: Server) -> None:
    t0 = time.monotonic()
    page.goto("/")
    page.wait_for_url(re.compile(r"/signin\?next=%2F$"))
    page.fill("#token", server.qa)
    page.press("#token", "Enter")
    page.wait_for_url(f"{server.url}/")
    page.wait_for_selector("#queue a.row")
    queue = read_queue(page)
    assert len(queue) == 30  # every board is pending; the pass ones come last
    ranks = [(RISK_RANK[q["verdict"]], q["conf"]) for q in queue]
    assert ranks == sorted(ranks), "risk order: uncertain, then fail, then pass; least confident first"
    assert queue[0]["verdict"] == "uncertain"
    shot(page, "queue")

    page.keyboard.press("j")  # focus the first row
    page.keyboard.press("Enter")
    first = wait_for_board(page, queue[0]["id"])
    page.wait_for_selector("#viewport rect.box")
    page.keyboard.press("?")
    page.wait_for_selector("#help[role=dialog]")
    assert page.is_visible("#help >> text=relabel the selected box")
    shot(page, "review-help")
    page.keyboard.press("Escape")
    page.wait_for_selector("#help", state="detached")
    page.keyboard.press("j")
    assert wait_for_board(page, queue[1]["id"]) == queue[1]["id"]
    page.keyboard.press("k")
    wait_for_board(page, first)
    page.keyboard.press("b")  # boxes off and on again
    assert page.get_attribute("#toggle-boxes", "aria-pressed") == "false"
    page.keyboard.press("b")
    page.keyboard.press("ArrowRight")  # select the first box
    page.wait_for_selector("#viewport rect.box.selected")
    page.keyboard.press("+")
    shot(page, "review")
    page.keyboard.press("0")

    before = {q["id"]: server.store.get(q["id"]) for q in queue[:3]}
    page.keyboard.press("c")  # confirm: uncertain with boxes -> fail; goes to the next pending board
    second = wait_for_next(page, first)
    page.keyboard.press("r")  # reject as false positive: -> pass
    third = wait_for_next(page, second)
    assert [first, second, third] == [q["id"] for q in queue[:3]]
    page.wait_for_selector("#viewport rect.box")
    page.keyboard.press("ArrowRight")
    selected = page.text_content("#selection") or ""
    key = "1" if " short " in selected else "2"
    new_class = "open" if key == "1" else "short"
    page.keyboard.press(key)  # relabel the selected box
    page.wait_for_selector(f"#boxes button[aria-pressed=true]:has-text('{new_class}')")
    page.wait_for_selector("#audit .what:has-text('relabel')")
    page.keyboard.press("j")
    wait_for_next(page, third)
    page.keyboard.press("k")
    wait_for_board(page, third)
    page.wait_for_selector("#summary .badge.corrected")

    # the database
    after = {i: server.store.get(i) for i in (first, second, third)}
    assert [after[i].review_status for i in (first, second, third)] == [
        ReviewStatus.CONFIRMED, ReviewStatus.REJECTED, ReviewStatus.CORRECTED]
    assert all(a.reviewed_by == "alice" for a in after.values())
    assert after[second].outcome is Outcome.PASS and after[third].outcome is Outcome.FAIL
    assert [b.class_name for b in after[third].boxes if b.class_name == new_class]
    changed = {i for i in after if after[i].outcome != before[i].outcome}
    assert second in changed

    # the event log and the twin
    sync = server.services.sync
    assert sync is not None
    events = [e for e in sync.log.read(0, 10_000) if e.type == "review.corrected"]
    datas = {json.loads(e.body)["data"]["inspection_id"]: json.loads(e.body)["data"] for e in events}
    assert set(datas) == changed
    assert datas[second]["before"] == before[second].outcome.value and datas[second]["after"] == "pass"
    corrected = sum(json.loads(sync.twins.document_text(line)[1])["features"]["counters"]["properties"]["corrected"]
                    for line in sync.twins.lines())
    assert corrected == len(changed)
    assert time.monotonic() - t0 < 45


def test_filters_land_in_the_url_and_survive_reload(page: Any, server: Server) -> None:
    sign_in_api(page, server)
    # pages of 10 instead of 50, so that "load more" has something to load
    page.route(re.compile(r"/api/v1/inspections\?"),
               lambda route: route.continue_(url=route.request.url.replace("limit=50", "limit=10")))
    page.goto("/?review_status=all")  # other tests review some boards: all 30, whatever their status
    page.wait_for_selector("#queue a.row")
    assert len(read_queue(page)) == 10
    for shown in (20, 30):
        page.click("#load-more")
        page.wait_for_function("n => document.querySelectorAll('#queue a.row').length === n", arg=shown)
    page.wait_for_selector("#load-more", state="hidden")
    ids = [r["id"] for r in read_queue(page)]
    assert len(set(ids)) == 30
    page.select_option("#f-review_status", "pending")
    page.wait_for_function("() => !location.search.includes('review_status')")
    page.select_option("#f-verdict", "fail")
    page.wait_for_url(re.compile(r"verdict=fail"))
    page.fill("#f-camera", "cam2")
    page.press("#f-camera", "Enter")
    page.wait_for_url(re.compile(r"verdict=fail.*camera=cam2|camera=cam2.*verdict=fail"))
    page.wait_for_function("() => [...document.querySelectorAll('#queue a.row')].every(a => "
                           "a.classList.contains('fail') && a.textContent.includes('cam2'))")
    rows = read_queue(page)
    assert rows and all(r["verdict"] == "fail" for r in rows)
    page.reload()
    page.wait_for_selector("#queue a.row")
    assert page.input_value("#f-verdict") == "fail" and page.input_value("#f-camera") == "cam2"
    assert [r["id"] for r in read_queue(page)] == [r["id"] for r in rows]
    page.go_back()
    page.wait_for_function("() => !location.search.includes('camera')")
    page.wait_for_function("() => document.querySelector('#f-camera').value === ''")
    assert page.input_value("#f-verdict") == "fail"
    # the review page keeps the queue's filters: j walks the filtered queue
    page.click("#queue a.row >> nth=0")
    wait_for_board(page)
    assert "verdict=fail" in page.url
    assert page.get_attribute("#back", "href") == "/?verdict=fail"


@pytest.mark.parametrize("path", ["/", "/review/first", "/live", "/dashboard?range=all&bucket=minute", "/models"])
def test_pages_fit_1366x768_with_labelled_controls(page: Any, server: Server, path: str) -> None:
    sign_in_api(page, server)
    if path == "/review/first":
        path = f"/review/{server.store.list(limit=1).items[0].id}"
    page.goto(path)
    page.wait_for_selector("#top #whoami")
    ready = {"/": "#queue a.row", "/live": "#cameras figure img", "/models": ".model-card",
             "/dashboard?range=all&bucket=minute": "#pareto svg rect"}
    page.wait_for_selector(ready.get(path, "#viewport rect.box"))
    if path == "/live":
        page.wait_for_selector("#cam-cam2 .badge.offline")
        page.wait_for_function("() => [...document.querySelectorAll('#cameras img')].every(i => i.complete)")
    page.wait_for_load_state("networkidle") if path != "/live" else page.wait_for_timeout(300)
    no_horizontal_scroll(page)
    assert unlabelled_controls(page) == []
    name = {"/": "queue-1366", "/live": "live", "/models": "models"}.get(path, "dashboard")
    if path.startswith("/review/"):
        name = "review-1366"
    page.mouse.move(0, 0)
    shot(page, name)
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), "the focused control shows no outline"


def pending_fail_ids(server: Server) -> list[str]:
    flt = InspectionFilter(outcome=Outcome.FAIL, review_status=ReviewStatus.PENDING)
    items = server.store.list(flt, limit=50).items
    return [it.id for it in items]


def test_a_board_reviewed_by_someone_else_shows_409_state(page: Any, server: Server) -> None:
    target = pending_fail_ids(server)[-1]
    sign_in_api(page, server)
    page.goto(f"/review/{target}?verdict=fail")
    wait_for_board(page, target)
    version = server.store.get(target).version
    r = page.context.request.post(f"{server.url}/api/v1/inspections/{target}/review",
                                  data={"action": "confirm", "version": version},
                                  headers={"Authorization": f"Bearer {server.bob}"})
    assert r.ok, r.text()
    page.keyboard.press("c")
    page.wait_for_selector("#conflict:has-text('bob')")
    assert review_id(page) == target  # stays on the board
    page.wait_for_selector("#summary .badge.confirmed")
    assert server.store.get(target).reviewed_by == "bob"
    shot(page, "review-conflict")


def test_zoom_draw_a_missed_box_and_reject_one_box(page: Any, server: Server) -> None:
    target = pending_fail_ids(server)[-1]
    n_boxes = len(server.store.get(target).boxes)
    sign_in_api(page, server)
    page.goto(f"/review/{target}")
    wait_for_board(page, target)
    page.wait_for_selector("#viewport rect.box")
    vp = page.locator("#viewport").bounding_box()
    assert vp is not None
    zoom = page.text_content("#zoom-level")
    page.mouse.move(vp["x"] + vp["width"] / 2, vp["y"] + vp["height"] / 2)
    page.mouse.wheel(0, -400)
    page.wait_for_function("z => document.querySelector('#zoom-level').textContent !== z", arg=zoom)
    transform = page.evaluate("document.querySelector('#viewport .stage').style.transform")
    page.mouse.down()  # drag pans
    page.mouse.move(vp["x"] + vp["width"] / 2 - 80, vp["y"] + vp["height"] / 2 - 40, steps=4)
    page.mouse.up()
    assert page.evaluate("document.querySelector('#viewport .stage').style.transform") != transform
    page.keyboard.press("0")
    page.click("#viewport rect.box >> nth=1")  # click selects
    page.wait_for_selector("#viewport rect.box.selected[data-index='1']")
    page.wait_for_selector("#boxes li:nth-child(2) button[aria-pressed=true]")
    page.keyboard.press("a")  # draw mode: drag a box
    x, y = vp["x"] + vp["width"] * 0.45, vp["y"] + vp["height"] * 0.45
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 40, y + 30, steps=5)
    page.mouse.up()
    page.wait_for_function("n => document.querySelectorAll('#viewport rect.box').length === n", arg=n_boxes + 1)
    page.keyboard.press("Escape")  # unselect
    page.keyboard.press("ArrowRight")
    page.keyboard.press("x")  # reject box 1 only
    page.wait_for_selector("#boxes button.rejected")
    page.keyboard.press("m")
    page.keyboard.type("dust on the lens, not a defect")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#audit >> text=dust on the lens")
    assert page.input_value("#comment") == ""
    page.keyboard.press("Escape")
    shot(page, "review-edited")
    after = server.store.get(target)
    assert len(after.boxes) == n_boxes + 1 and after.boxes[-1].source.value == "review"
    assert after.boxes[0].rejected and after.review_status is ReviewStatus.CORRECTED
    assert after.outcome is Outcome.FAIL


def test_clearing_a_filtered_queue_ends_on_queue_cleared(page: Any, server: Server) -> None:
    query = "?verdict=fail&line=line-2&camera=cam2"
    flt = InspectionFilter(outcome=Outcome.FAIL, review_status=ReviewStatus.PENDING, line_id="line-2",
                           camera_id="cam2")
    ids = {it.id for it in server.store.list(flt).items}
    assert len(ids) == 2
    sign_in_api(page, server)
    page.goto("/" + query)
    page.wait_for_function("() => document.querySelectorAll('#queue a.row').length === 2")
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    first = wait_for_board(page)
    assert page.text_content("#position") == "1 of 2"
    page.keyboard.press("c")
    wait_for_next(page, first)
    page.keyboard.press("c")
    page.wait_for_selector(".done:has-text('Queue cleared')")
    assert {server.store.get(i).review_status for i in ids} == {ReviewStatus.CONFIRMED}
    page.keyboard.press("q")
    page.wait_for_url(f"{server.url}/{query}")
    page.wait_for_selector(".empty:has-text('Nothing to review')")


# ---------------------------------------------------------------- the golden board beside the tested one

TRANSFORM = re.compile(r"translate\(([-\d.e]+)px, ([-\d.e]+)px\) scale\(([-\d.e]+)\)")


def stage_transforms(page: Any) -> list[str]:
    return page.evaluate("[...document.querySelectorAll('#viewport .stage, #golden-viewport .stage')]"
                         ".map(s => s.style.transform)")


def open_board(page: Any, server: Server, inspection_id: str) -> None:
    sign_in_api(page, server)
    page.goto(f"/review/{inspection_id}")
    wait_for_board(page, inspection_id)
    page.wait_for_function("() => [...document.querySelectorAll('#panes img[src]')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")


def diff_pixels(page: Any, points: list[tuple[int, int]], keep_out: list[tuple[int, int, int, int]]) -> Any:
    """RGBA of the difference layer at ``points``, and how many coloured pixels lie outside ``keep_out``."""
    return page.evaluate("""([pts, rects]) => {
        const c = document.querySelector('#viewport .stage canvas.diff');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const at = ([x, y]) => [...d.slice(4 * (y * c.width + x), 4 * (y * c.width + x) + 4)];
        let stray = 0;
        for (let i = 3; i < d.length; i += 4) {
            const x = ((i - 3) / 4) % c.width, y = Math.floor((i - 3) / 4 / c.width);
            if (d[i] > 0 && !rects.some(([x1, y1, x2, y2]) => x >= x1 && x <= x2 && y >= y1 && y <= y2)) stray++;
        }
        return { at: pts.map(at), stray };
    }""", [points, keep_out])


def screen_pixel(page: Any, xy: tuple[int, int]) -> tuple[int, int, int]:
    """The BGR colour on screen of crop pixel ``xy`` of the tested board."""
    tx, ty, s = (float(v) for v in TRANSFORM.fullmatch(stage_transforms(page)[0]).groups())  # type: ignore[union-attr]
    png = page.locator("#viewport").screenshot()
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    b, g, r = image[round(ty + xy[1] * s), round(tx + xy[0] * s)]
    return int(b), int(g), int(r)


def test_the_golden_board_zooms_and_pans_with_the_board_and_shows_the_difference(ref_page: Any,
                                                                               ref_server: Server) -> None:
    page, ref = ref_page, ref_server.ref
    assert ref is not None
    open_board(page, ref_server, ref.aligned_id)
    assert page.text_content("#golden-recipe") == "pcb-golden" and page.text_content("#golden-sha") == ref.golden_sha256
    assert ref.golden_sha256 in (page.get_attribute("#golden-sha", "title") or "")
    assert "0.973" in (page.text_content("#alignment-score") or "") and not page.is_visible("#unaligned-note")
    assert page.locator("#viewport rect.box").count() == 2 and page.locator("#golden-viewport rect.ghost").count() == 2
    tested, golden, panel, info = (page.locator(s).bounding_box() for s in
                                   ("#viewport", "#golden-viewport", ".panel", "#golden-info"))
    assert tested["x"] + tested["width"] <= golden["x"] and golden["x"] + golden["width"] <= panel["x"]
    assert abs(tested["width"] - golden["width"]) < 1 and abs(tested["y"] - golden["y"]) < 1
    assert tested["width"] > 420 and tested["height"] > 420 and info["y"] + info["height"] <= tested["y"]
    no_horizontal_scroll(page)
    assert unlabelled_controls(page) == []
    page.mouse.move(0, 0)
    shot(page, "review-golden-1366")

    fitted = stage_transforms(page)
    assert fitted[0] == fitted[1]
    page.mouse.move(golden["x"] + golden["width"] / 2, golden["y"] + golden["height"] / 2)
    page.mouse.wheel(0, -500)  # zoom on the golden board
    page.wait_for_function("t => document.querySelector('#viewport .stage').style.transform !== t", arg=fitted[0])
    zoomed = stage_transforms(page)
    assert zoomed[0] == zoomed[1]
    x, y = tested["x"] + tested["width"] / 2, tested["y"] + tested["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()  # pan the tested board
    page.mouse.move(x - 90, y + 50, steps=4)
    page.mouse.up()
    panned = stage_transforms(page)
    assert panned[0] == panned[1] != zoomed[0]
    page.keyboard.press("ArrowRight")  # select the short: zoom-to-box moves both
    page.wait_for_selector("#viewport rect.box.selected[data-index='0']")
    page.keyboard.press("+")
    revealed = stage_transforms(page)
    assert revealed[0] == revealed[1] != panned[0]

    assert page.get_attribute("#toggle-diff", "aria-pressed") == "false" and page.locator("canvas.diff").count() == 0
    page.keyboard.press("d")
    page.wait_for_selector("#viewport .stage canvas.diff")
    assert page.get_attribute("#toggle-diff", "aria-pressed") == "true" and page.is_visible("#diff-key")
    short = ((SHORT_BAR[0] + SHORT_BAR[2]) // 2, (SHORT_BAR[1] + SHORT_BAR[3]) // 2)
    cut = ((OPEN_CUT[0] + OPEN_CUT[2]) // 2, (OPEN_CUT[1] + OPEN_CUT[3]) // 2)
    same = [(100, 100), (60, 300), (150, 420), (500, 250)]
    around = [(x1 - 6, y1 - 6, x2 + 6, y2 + 6) for x1, y1, x2, y2 in (SHORT_BAR, OPEN_CUT)]
    got = diff_pixels(page, [short, cut, *same], around)
    assert [p[:3] for p in got["at"][:2]] == [[255, 0, 255]] * 2 and min(p[3] for p in got["at"][:2]) > 200
    assert [p[3] for p in got["at"][2:]] == [0] * len(same) and got["stray"] == 0
    b, g, r = screen_pixel(page, short)  # on screen, over the black short: clearly magenta
    assert r > 200 and b > 200 and g < 80, (b, g, r)
    page.mouse.move(0, 0)
    shot(page, "review-golden-difference")
    page.keyboard.press("d")
    page.wait_for_selector("canvas.diff", state="detached")
    assert page.get_attribute("#toggle-diff", "aria-pressed") == "false"
    page.click("#toggle-diff")
    page.wait_for_selector("#viewport .stage canvas.diff")
    page.keyboard.press("?")
    assert page.is_visible("#help >> text=overlay the difference from the golden board")
    page.keyboard.press("Escape")


def test_an_unaligned_board_shows_its_golden_with_a_note_and_no_difference(ref_page: Any, ref_server: Server) -> None:
    page, ref = ref_page, ref_server.ref
    assert ref is not None
    open_board(page, ref_server, ref.unaligned_id)
    assert page.is_visible("#golden-pane") and page.is_visible("#golden-viewport img")
    assert page.text_content("#unaligned-note") == "board could not be aligned to its golden (score 0.410)"
    assert page.is_disabled("#toggle-diff")
    page.keyboard.press("d")
    page.wait_for_selector(".toast.show:has-text('could not be aligned')")
    assert page.locator("canvas.diff").count() == 0 and page.get_attribute("#toggle-diff", "aria-pressed") == "false"
    no_horizontal_scroll(page)
    page.mouse.move(0, 0)
    shot(page, "review-golden-unaligned")


def test_a_plain_board_shows_no_golden_panel(ref_page: Any, ref_server: Server) -> None:
    page, ref = ref_page, ref_server.ref
    assert ref is not None
    plain = next(it for it in ref_server.store.list(limit=10).items if it.golden_sha256 is None and it.boxes
                 and it.outcome is Outcome.UNCERTAIN)
    open_board(page, ref_server, plain.id)
    page.wait_for_selector("#viewport rect.box")
    for hidden in ("#golden-pane", "#golden-info", "#toggle-diff", "#board-caption"):
        assert not page.is_visible(hidden), hidden
    viewer, tested = page.locator(".viewer").bounding_box(), page.locator("#viewport").bounding_box()
    assert abs(viewer["width"] - tested["width"]) < 2  # the board alone takes the whole width, as before
    page.keyboard.press("d")
    page.wait_for_selector(".toast.show:has-text('no golden image')")
    assert page.locator("canvas.diff").count() == 0
    page.keyboard.press("k")  # the queue's first board was compared with a golden: the pair appears...
    wait_for_board(page, ref.unaligned_id)
    page.wait_for_selector("#golden-pane", state="visible")
    page.keyboard.press("j")  # ...and goes again
    wait_for_board(page, plain.id)
    page.wait_for_selector("#golden-pane", state="hidden")
    assert abs(page.locator("#viewport").bounding_box()["width"] - tested["width"]) < 2
