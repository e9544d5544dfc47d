"""The review page of boards compared with a golden image, in real headless Chromium.

The pair in one zoom and pan, the difference layer, the failed alignment, and plain boards
without a golden panel.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from inspection.core.outcome import Outcome
from tests.api.conftest import OPEN_CUT, SHORT_BAR
from tests.api.ui.support import (
    TRANSFORM,
    Server,
    no_horizontal_scroll,
    shot,
    sign_in_api,
    unlabelled_controls,
    wait_for_board,
)


def stage_transforms(page: Any) -> list[str]:
    return page.evaluate(
        "[...document.querySelectorAll('#viewport .stage, #golden-viewport .stage')].map(s => s.style.transform)"
    )


def open_board(page: Any, server: Server, inspection_id: str) -> None:
    sign_in_api(page, server)
    page.goto(f"/review/{inspection_id}")
    wait_for_board(page, inspection_id)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#panes img[src]')].every(i => i.complete && i.naturalWidth > 0)"
    )


def diff_pixels(page: Any, points: list[tuple[int, int]], keep_out: list[tuple[int, int, int, int]]) -> Any:
    """RGBA of the difference layer at ``points``, and how many coloured pixels lie outside ``keep_out``."""
    return page.evaluate(
        """([pts, rects]) => {
        const c = document.querySelector('#viewport .stage canvas.diff');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const at = ([x, y]) => [...d.slice(4 * (y * c.width + x), 4 * (y * c.width + x) + 4)];
        let stray = 0;
        for (let i = 3; i < d.length; i += 4) {
            const x = ((i - 3) / 4) % c.width, y = Math.floor((i - 3) / 4 / c.width);
            if (d[i] > 0 && !rects.some(([x1, y1, x2, y2]) => x >= x1 && x <= x2 && y >= y1 && y <= y2)) stray++;
        }
        return { at: pts.map(at), stray };
    }""",
        [points, keep_out],
    )


def screen_pixel(page: Any, xy: tuple[int, int]) -> tuple[int, int, int]:
    """The BGR colour on screen of crop pixel ``xy`` of the tested board."""
    tx, ty, s = (float(v) for v in TRANSFORM.fullmatch(stage_transforms(page)[0]).groups())  # type: ignore[union-attr]
    png = page.locator("#viewport").screenshot()
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    b, g, r = image[round(ty + xy[1] * s), round(tx + xy[0] * s)]
    return int(b), int(g), int(r)


def test_the_golden_board_zooms_and_pans_with_the_board_and_shows_the_difference(
    ref_page: Any, ref_server: Server
) -> None:
    page, ref = ref_page, ref_server.ref
    assert ref is not None
    open_board(page, ref_server, ref.aligned_id)
    assert page.text_content("#golden-recipe") == "pcb-golden" and page.text_content("#golden-sha") == ref.golden_sha256
    assert ref.golden_sha256 in (page.get_attribute("#golden-sha", "title") or "")
    assert "0.973" in (page.text_content("#alignment-score") or "") and not page.is_visible("#unaligned-note")
    assert page.locator("#viewport rect.box").count() == 2 and page.locator("#golden-viewport rect.ghost").count() == 2
    tested, golden, panel, info = (
        page.locator(s).bounding_box() for s in ("#viewport", "#golden-viewport", ".panel", "#golden-info")
    )
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
    plain = next(
        it
        for it in ref_server.store.list(limit=10).items
        if it.golden_sha256 is None and it.boxes and it.outcome is Outcome.UNCERTAIN
    )
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
