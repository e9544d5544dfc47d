"""The QA review UI in real headless Chromium (Playwright): sign-in, the queue, keyboard review, filters, layout.

A QA reviewer signs in, opens the risk-ordered queue and reviews three boards with the
keyboard only; the test then reads the database, the event log and the twin.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from inspection.core.outcome import Outcome
from inspection.store import InspectionFilter, ReviewStatus
from tests.api.ui.support import (
    RISK_RANK,
    Server,
    no_horizontal_scroll,
    review_id,
    shot,
    sign_in_api,
    unlabelled_controls,
    wait_for_board,
    wait_for_next,
)


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
    assert len(queue) == 20  # the default queue is what needs a human: the pending fail and uncertain boards
    ranks = [(RISK_RANK[q["verdict"]], q["conf"]) for q in queue]
    assert ranks == sorted(ranks), "risk order: uncertain, then fail; least confident first"
    assert "pass" not in {q["verdict"] for q in queue}
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
        ReviewStatus.CONFIRMED,
        ReviewStatus.REJECTED,
        ReviewStatus.CORRECTED,
    ]
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
    corrected = sum(
        json.loads(sync.twins.document_text(line)[1])["features"]["counters"]["properties"]["corrected"]
        for line in sync.twins.lines()
    )
    assert corrected == len(changed)
    assert time.monotonic() - t0 < 45


def test_filters_land_in_the_url_and_survive_reload(page: Any, server: Server) -> None:
    sign_in_api(page, server)
    # pages of 10 instead of 50, so that "load more" has something to load
    page.route(
        re.compile(r"/api/v1/inspections\?"),
        lambda route: route.continue_(url=route.request.url.replace("limit=50", "limit=10")),
    )
    page.goto("/?review_status=all&verdict=any")  # other tests review some boards: all 30, whatever their status
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
    page.wait_for_function(
        "() => [...document.querySelectorAll('#queue a.row')].every(a => "
        "a.classList.contains('fail') && a.textContent.includes('cam2'))"
    )
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
    ready = {
        "/": "#queue a.row",
        "/live": "#cameras figure img",
        "/models": ".model-card",
        "/dashboard?range=all&bucket=minute": "#pareto svg rect",
    }
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
    r = page.context.request.post(
        f"{server.url}/api/v1/inspections/{target}/review",
        data={"action": "confirm", "version": version},
        headers={"Authorization": f"Bearer {server.bob}"},
    )
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
    flt = InspectionFilter(outcome=Outcome.FAIL, review_status=ReviewStatus.PENDING, line_id="line-2", camera_id="cam2")
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
