"""Issue 13 item 5, active learning in real headless Chromium: the queue ordered by expected information.

On an app running line-1 with a model desk (active v1, v2 in shadow) and 30 stored boards, QA
picks "most informative first": the queue lists line-1's unreviewed boards by expected
information, the board the shadow model disagrees on first, each row with its score (the
why on hover and in the row's label); j/k, a shift range and the bulk confirm work as in
the risk order, and the confirmed boards leave the ranking.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.model_desk import DeskParts, ModelDesk
from inspection.ml.gate import GateConfig
from inspection.store import ModelStates, Version
from tests.api.conftest import outcome_of
from tests.api.test_model_delivery import add_version
from tests.api.ui.support import Server, serving, shot, sign_in_api

DISAGREEING = 4  # line-1, failed by the active model; the shadow model passes it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, plain_model: Path) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("ui-information")
    with serving(tmp, 30) as srv:
        registry = tmp / "weights"
        for v in (1, 2):
            add_version(registry, v)
        sync = srv.services.sync
        assert sync is not None
        parts = DeskParts(registry, "line-1", "edge-test", sync=sync, gate=GateConfig(parity_images=0))
        desk = ModelDesk(ModelStates(sync.log.engine), parts)
        desk.start_line(Version("defect-yolov8n", 1))
        desk.start_shadow(Version("defect-yolov8n", 2), "ml", "watch it")
        assert outcome_of(DISAGREEING).value == "fail"
        ModelStates(sync.log.engine).add_shadow_verdicts(
            [{"line_id": "line-1", "part_id": f"run0-cam1-{DISAGREEING}-{100 + DISAGREEING}",
              "name": "defect-yolov8n", "version": 2, "outcome": "pass", "boxes": []}]
        )  # fmt: skip
        srv.services.model_desk = desk
        yield srv


def ranking(server: Server) -> list[dict[str, Any]]:
    """What the queue should list: the desk's review order, narrowed to fail and uncertain (the default filter)."""
    desk = server.services.model_desk
    assert desk is not None
    return [b for b in desk.review_order(1000) if b["verdict"] in ("fail", "uncertain")]


def shown(page: Any) -> list[dict[str, Any]]:
    return page.evaluate("""() => [...document.querySelectorAll('#queue li[data-id]')].map(li => ({
        id: li.dataset.id, selected: li.classList.contains('selected'),
        chip: li.querySelector('.chip.info')?.textContent ?? null,
        why: li.querySelector('.chip.info')?.title ?? null,
        label: li.querySelector('a.row').getAttribute('aria-label')}))""")


def test_qa_orders_the_queue_by_expected_information_and_reviews_from_the_top(page: Any, server: Server) -> None:
    want = ranking(server)
    assert want[0]["inspection_id"] == str(uuid.UUID(int=DISAGREEING + 1)) and want[0]["score"] > 1
    sign_in_api(page, server)
    page.goto("/")
    page.wait_for_selector("#queue a.row")
    assert shown(page)[0]["chip"] is None  # the risk order shows no score
    page.select_option("#f-sort", "information")
    page.wait_for_url("**/?sort=information")
    page.wait_for_function("() => document.querySelector('#queue .chip.info') !== null")
    rows = shown(page)
    assert [r["id"] for r in rows] == [b["inspection_id"] for b in want]  # line-1 only, most informative first
    top = rows[0]
    assert top["chip"] == f"info {want[0]['score']:.2f}shadow disagrees"
    assert "the shadow model says pass, the active one fail" in top["why"] and "uncertainty" in top["why"]
    assert f"expected information {want[0]['score']:.2f}" in top["label"]
    assert rows[1]["chip"] == f"info {want[1]['score']:.2f}" and "uncertainty" in rows[1]["why"]
    page.wait_for_selector(f"#queue-total:has-text('{len(want)} pending')")  # the count covers what is ranked
    assert "most informative first" in page.text_content("#order-hint") and "line-1" in page.text_content("#order-hint")
    page.keyboard.press("j")
    page.keyboard.press("Shift+J")
    page.wait_for_selector("#bulk-count:has-text('2 selected')")
    assert [r["selected"] for r in shown(page)][:3] == [True, True, False]
    page.mouse.move(0, 0)
    shot(page, "queue-information")
    page.keyboard.press("c")
    page.wait_for_selector("#bulk-dialog[open] >> text=Confirm the model's verdict on 2 boards?")
    page.keyboard.press("Enter")
    page.wait_for_selector(".toast.show:has-text('Confirmed 2 boards')")
    page.wait_for_selector(f"#queue-total:has-text('{len(want) - 2} pending')")
    page.wait_for_function("id => document.querySelector('#queue li[data-id]')?.dataset.id === id",
                           arg=want[2]["inspection_id"])  # fmt: skip
    assert [r["id"] for r in shown(page)] == [b["inspection_id"] for b in want[2:]]
    page.reload()  # the order lives in the URL
    page.wait_for_function("() => document.querySelector('#queue .chip.info') !== null")
    assert page.input_value("#f-sort") == "information"
