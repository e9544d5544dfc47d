"""Issue 12 items 1-4 and 6 in real headless Chromium: a QA shift that clears its queue safely.

On an app holding 90 boards (60 of them fail or uncertain): the default queue is what needs
a human, with its total; a part is found by its id; new boards raise a badge from the event
feed; a range and then every shown board are confirmed in ONE request; a mistaken reject is
taken back with ``u``; a reviewer reopens their own review; the reasons, the audit and the
part id read in words; zoom centres the selected box; a camera dropping 64% of its frames
shows a warning; and the dashboard, /api/v1/stats and the twin count the same corrections.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from inspection.core.outcome import Outcome
from inspection.store import InspectionFilter, ReviewStatus, StoredInspection
from tests.api.conftest import inspected_draft, make_record, outcome_of, real_crops
from tests.api.ui.support import (
    TRANSFORM,
    FakeLive,
    Server,
    serving,
    shot,
    sign_in_api,
    wait_for_board,
    wait_for_next,
)

N = 90
NUMBERS = itertools.count(1000)  # the boards added by the tests (make_record's index: unique ids and part ids)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("ui-queue"), N) as srv:
        yield srv


def flagged(server: Server, status: ReviewStatus | None = ReviewStatus.PENDING) -> list[StoredInspection]:
    """The default queue as the store has it: fail and uncertain, pending, in risk order."""
    flt = InspectionFilter(outcomes=(Outcome.FAIL, Outcome.UNCERTAIN), review_status=status)
    return list(server.store.list(flt, limit=500, sort="risk").items)


def rows(page: Any) -> list[dict[str, Any]]:
    return page.evaluate("""() => [...document.querySelectorAll('#queue li[data-id]')].map(li => ({
        id: li.dataset.id, verdict: li.dataset.verdict, selected: li.classList.contains('selected')}))""")


def twin_corrected(server: Server) -> int:
    sync = server.services.sync
    assert sync is not None
    return sum(
        json.loads(sync.twins.document_text(line)[1])["features"]["counters"]["properties"]["corrected"]
        for line in sync.twins.lines()
    )


def add_boards(server: Server, outcomes: list[Outcome]) -> list[str]:
    """New inspections as the line makes them: the rows and their part.inspected events, one transaction."""
    crop = real_crops(1)[0]
    sha = server.store.get(str(uuid.UUID(int=1))).evidence_sha256
    rng = np.random.default_rng(7)
    records = []
    for want in outcomes:
        i = next(NUMBERS)
        while outcome_of(i) is not want:
            i = next(NUMBERS)
        records.append(make_record(i, crop, sha, rng))
    sync = server.services.sync
    assert sync is not None
    now = datetime.now(UTC)
    sync.log.append([inspected_draft(r, now) for r in records], extra=server.store.adder(records))
    return [r.id for r in records]


# -- item 2 and 3: the queue -------------------------------------------------------------------------


def test_the_default_queue_is_what_needs_a_human_with_its_total_and_a_part_search(page: Any, server: Server) -> None:
    want = flagged(server)
    assert len(want) == 60
    sign_in_api(page, server)
    page.goto("/")
    page.wait_for_selector("#queue a.row")
    shown = rows(page)
    assert [r["id"] for r in shown] == [x.id for x in want[:50]]  # risk order, no pass board
    page.wait_for_selector("#queue-total:has-text('60 pending')")
    assert page.text_content("#queue-count") == "50 shown of 60"
    page.mouse.move(0, 0)
    shot(page, "queue")
    part = want[-1].part_id  # not on the first page
    page.fill("#f-part", part)
    page.press("#f-part", "Enter")
    page.wait_for_url(re.compile(r"part="))
    page.wait_for_function("() => document.querySelectorAll('#queue a.row').length === 1")
    assert page.text_content("#queue .part") == part  # the part id whole
    page.wait_for_selector("#queue-total:has-text('1 pending')")
    page.reload()
    page.wait_for_function("() => document.querySelectorAll('#queue a.row').length === 1")
    assert page.input_value("#f-part") == part


def test_new_boards_raise_a_badge_from_the_event_feed(page: Any, server: Server) -> None:
    total = len(flagged(server))
    sign_in_api(page, server)
    page.goto("/")
    page.wait_for_selector(f"#queue-total:has-text('{total} pending')")
    assert page.is_hidden("#new-items")
    fresh = add_boards(server, [Outcome.FAIL, Outcome.PASS, Outcome.UNCERTAIN])  # the pass board needs no human
    page.wait_for_selector("#new-items:has-text('2 new')")
    page.wait_for_selector(f"#queue-total:has-text('{total + 2} pending')")
    shot(page, "queue-new-items")
    page.keyboard.press("n")
    page.wait_for_selector("#new-items", state="hidden")
    page.wait_for_function(
        "t => document.querySelector('#queue-count').textContent === `50 shown of ${t}`", arg=total + 2
    )
    part = server.store.get(fresh[0]).part_id
    page.fill("#f-part", part)
    page.press("#f-part", "Enter")
    page.wait_for_function("id => document.querySelector('#queue a.row')?.dataset.id === id", arg=fresh[0])


def test_a_range_then_every_shown_board_is_confirmed_in_one_request(page: Any, server: Server) -> None:
    sign_in_api(page, server)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    before = flagged(server)
    page.goto("/")
    page.wait_for_selector(f"#queue-total:has-text('{len(before)} pending')")  # (with the rows it counts)
    page.wait_for_selector("#queue a.row")
    page.keyboard.press("j")
    for _ in range(3):
        page.keyboard.press("Shift+J")
    page.wait_for_selector("#bulk-count:has-text('4 selected')")
    assert [r["selected"] for r in rows(page)][:6] == [True] * 4 + [False] * 2
    page.keyboard.press("Shift+K")
    page.wait_for_selector("#bulk-count:has-text('3 selected')")
    page.keyboard.press("Escape")
    page.wait_for_selector("#bulk", state="hidden")
    page.keyboard.press("Control+a")
    page.wait_for_selector("#bulk-count:has-text('50 selected')")
    chosen = [r["id"] for r in rows(page) if r["selected"]]
    assert len(chosen) == 50
    page.keyboard.press("c")
    page.wait_for_selector("#bulk-dialog[open] >> text=Confirm the model's verdict on 50 boards?")
    shot(page, "queue-bulk-confirm")
    page.keyboard.press("Enter")
    page.wait_for_selector(".toast.show:has-text('Confirmed 50 boards')")
    assert [u for u in posts if "/api/v1/" in u] == [posts[0]] and posts[0].endswith("/api/v1/inspections/bulk-review")
    for inspection_id in chosen:
        got = server.store.get(inspection_id)
        assert got.review_status is ReviewStatus.CONFIRMED and got.reviewed_by == "alice"
        assert [e.action for e in server.store.audit(inspection_id)] == ["confirm"]
    page.wait_for_selector(f"#queue-total:has-text('{len(before) - 50} pending')")
    assert not set(chosen) & {r["id"] for r in rows(page)}


# -- item 1: undo and reopen --------------------------------------------------------------------------


def test_u_takes_back_a_mistaken_reject_and_the_twin_follows(page: Any, server: Server) -> None:
    target = next(x for x in flagged(server) if x.outcome is Outcome.FAIL)
    corrected = twin_corrected(server)
    sign_in_api(page, server)
    page.goto(f"/review/{target.id}?verdict=fail")
    wait_for_board(page, target.id)
    page.keyboard.press("r")  # the mistake: the page moves on to the next board
    wait_for_next(page, target.id)
    assert server.store.get(target.id).outcome is Outcome.PASS
    assert twin_corrected(server) == corrected + 1
    page.keyboard.press("u")
    wait_for_board(page, target.id)  # back on the board, the reject taken back
    page.wait_for_selector("#summary .badge.pending")
    page.wait_for_selector("#audit .what:has-text('alice (qa) undid their action #')")
    got = server.store.get(target.id)
    assert (got.outcome, got.review_status, got.corrected) == (Outcome.FAIL, ReviewStatus.PENDING, False)
    assert [e.action for e in server.store.audit(target.id)] == ["reject", "undo"]
    assert twin_corrected(server) == corrected
    page.locator("#audit").scroll_into_view_if_needed()
    page.mouse.move(0, 0)
    shot(page, "review-undo")
    page.keyboard.press("u")
    page.wait_for_selector(".toast.show:has-text('Nothing of yours to undo')")


def test_the_reviewer_reopens_their_own_review_and_someone_else_may_not(page: Any, server: Server) -> None:
    first, _ = add_boards(server, [Outcome.UNCERTAIN, Outcome.UNCERTAIN])  # (the bulk test took the others)
    target = server.store.get(first)
    sign_in_api(page, server)
    page.goto(f"/review/{target.id}?verdict=uncertain")
    wait_for_board(page, target.id)
    assert page.is_hidden("#reopen")
    page.keyboard.press("c")
    wait_for_next(page, target.id)
    r = page.context.request.post(
        f"{server.url}/api/v1/inspections/{target.id}/review",
        data={"action": "reopen"},
        headers={"Authorization": f"Bearer {server.bob}"},
    )
    assert r.status == 409 and "or a lead" in r.json()["detail"]
    page.goto(f"/review/{target.id}?verdict=uncertain&review_status=all")
    wait_for_board(page, target.id)
    page.wait_for_selector("#reopen:visible")
    page.keyboard.press("o")
    page.wait_for_selector("#summary .badge.pending")
    page.wait_for_selector("#audit .what:has-text('alice (qa) reopened the board')")
    got = server.store.get(target.id)
    assert (got.outcome, got.review_status, got.reviewed_by) == (Outcome.UNCERTAIN, ReviewStatus.PENDING, None)


# -- item 3: evidence in words -----------------------------------------------------------------------


def screen_centre(page: Any, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """(box centre on screen x, y; the viewport's centre x, y), in viewport pixels."""
    m = TRANSFORM.search(page.evaluate("document.querySelector('#viewport .stage').style.transform"))
    assert m, "no transform"
    tx, ty, s = (float(v) for v in m.groups())
    w, h = page.evaluate(
        "[document.querySelector('#viewport').clientWidth, document.querySelector('#viewport').clientHeight]"
    )
    x1, y1, x2, y2 = box
    return (x1 + x2) / 2 * s + tx, (y1 + y2) / 2 * s + ty, w / 2, h / 2


def test_reasons_audit_and_part_id_read_in_words_and_zoom_centres_the_box(page: Any, server: Server) -> None:
    item = next(x for x in flagged(server) if x.outcome is Outcome.FAIL and len(x.boxes) >= 2)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    sign_in_api(page, server)
    page.goto(f"/review/{item.id}")
    wait_for_board(page, item.id)
    reasons = page.locator("#reasons li").all_text_contents()
    assert len(reasons) == len(item.boxes), reasons
    assert all(r.startswith(f"{b.class_name} in the ") and " px" in r for r, b in zip(reasons, item.boxes, strict=True))
    assert page.text_content("#part-id") == item.part_id
    page.click("#copy-part")
    page.wait_for_selector(".toast.show:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == item.part_id
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")  # the second box
    page.wait_for_selector("#viewport rect.box.selected[data-index='1']")
    for _ in range(3):
        page.keyboard.press("+")
    page.wait_for_function("() => document.querySelector('#zoom-level').textContent !== '100 %'")
    bx, by, cx, cy = screen_centre(page, item.boxes[1].xyxy)
    assert abs(bx - cx) <= 1 and abs(by - cy) <= 1, (bx, by, cx, cy)
    page.keyboard.press("x")  # reject the second box only
    page.wait_for_selector("#reasons li:has-text('corrected by alice')")
    x1, _, x2, _ = (round(v) for v in item.boxes[1].xyxy)
    now = page.locator("#reasons li").all_text_contents()
    assert not any(f"x {x1}-{x2}," in r for r in now) and len(now) == len(item.boxes)  # one box less, the decision
    assert page.text_content("#audit li .what").startswith(f"alice (qa) rejected box {item.boxes[1].id} (")
    page.keyboard.press("0")
    page.mouse.move(0, 0)
    shot(page, "review")


# -- item 4: live view honesty ------------------------------------------------------------------------


def test_a_camera_dropping_most_of_its_frames_shows_a_warning(page: Any, server: Server) -> None:
    live = server.services.engine
    assert isinstance(live, FakeLive)
    plain = live.status

    def dropping() -> dict[str, Any]:
        s = plain()
        s["cameras"][0] = {**s["cameras"][0], "frames_in": 10_000, "dropped": 6_400}
        return s

    live.status = dropping  # type: ignore[method-assign]
    try:
        sign_in_api(page, server)
        page.goto("/live")
        page.wait_for_selector("#cam-cam1 .badge.drop:has-text('dropping 64 % of frames')")
        page.wait_for_selector("#cam-cam2 figcaption strong")
        assert page.locator("#cam-cam2 .badge.drop").count() == 0  # 0 of 9,120 dropped
        page.wait_for_function("() => [...document.querySelectorAll('#cameras img')].every(i => i.complete)")
        shot(page, "live-drop")
    finally:
        del live.status


# -- item 6: one correction, the same number everywhere ------------------------------------------------


def test_dashboard_stats_and_twin_count_the_same_corrections(page: Any, server: Server) -> None:
    sign_in_api(page, server)
    fail = next(x for x in flagged(server) if x.outcome is Outcome.FAIL)
    unc = server.store.get(add_boards(server, [Outcome.UNCERTAIN])[0])
    url = f"{server.url}/api/v1/inspections/{{}}/review"
    for inspection_id, action in ((fail.id, "reject"), (unc.id, "confirm"), (fail.id, "undo")):
        r = page.context.request.post(
            url.format(inspection_id), data={"action": action}, headers={"Authorization": f"Bearer {server.qa}"}
        )
        assert r.ok, r.text()
    everything = server.store.list(limit=500).items
    defined = sum(1 for x in everything if x.review_status is not ReviewStatus.PENDING and x.outcome != x.model_verdict)
    stats = page.context.request.get(f"{server.url}/api/v1/stats").json()
    assert stats["corrected"] == twin_corrected(server) == defined > 0
    page.goto("/dashboard?range=all")
    kpi = page.locator(".kpi:has(.label:text-is('Corrected by QA')) .value")
    kpi.wait_for()
    assert kpi.text_content() == str(defined)
    page.wait_for_selector(".twin-corrected")
    per_line = page.locator(".twin-corrected").all_text_contents()  # the twin's own count, one card per line
    assert sum(int(re.sub(r"\D", "", t)) for t in per_line) == defined, per_line
    page.wait_for_load_state("networkidle")
    page.mouse.move(0, 0)
    shot(page, "dashboard")
