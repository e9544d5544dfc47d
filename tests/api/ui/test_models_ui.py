"""The models page's delivery section in headless Chromium: states, shadow report, shadow and promote for ml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.model_desk import DeskParts, ModelDesk
from inspection.ml.gate import GateConfig
from inspection.store import ModelStates, Version
from tests.api.test_model_delivery import add_version
from tests.api.ui.support import Server, shot


def attach_desk(server: Server, tmp: Path) -> str:
    """A desk for line-1 (versions 1 active, 2 registered) on the server; returns an ml token."""
    registry = tmp / "weights"
    for v in (1, 2):
        add_version(registry, v)
    sync = server.services.sync
    assert sync is not None and server.services.tokens is not None
    gate = GateConfig(parity_images=0)  # no gate set here: the gate refuses (409 with its figures)
    parts = DeskParts(registry, "line-1", "edge-test", sync=sync, gate=gate, gate_data=tmp / "none.yaml")
    desk = ModelDesk(ModelStates(sync.log.engine), parts)
    desk.start_line(Version("defect-yolov8n", 1))
    server.services.model_desk = desk
    return server.services.tokens.create("ml", "ml-eng")[1]


def test_ml_sees_the_states_runs_a_shadow_and_a_refused_promotion_shows_the_gate(page: Any, server: Server, tmp_path):
    token = attach_desk(server, tmp_path)
    assert page.context.request.post(f"{server.url}/api/v1/session", data={"token": token}).ok
    page.on("dialog", lambda d: d.accept("from the UI test"))
    page.goto("/models")
    page.wait_for_selector("#delivery table caption:has-text('Versions on line-1')")
    assert "serving" in page.text_content("#delivery h2")
    assert "No shadow run on this line yet." in page.text_content("#delivery")
    page.wait_for_selector("#delivery h3:has-text('Review next')")
    assert page.get_attribute("#delivery section[aria-label='review next'] li a", "href").startswith("/review/")
    row = page.locator("#delivery tr:has-text('defect-yolov8n:2')")
    assert row.locator(".badge").text_content() == "registered"
    row.locator("button:has-text('Shadow')").click()
    page.wait_for_selector("#delivery tr:has-text('defect-yolov8n:2') .badge:has-text('shadow')")
    page.wait_for_selector("#delivery h3:has-text('Shadow report: defect-yolov8n:2 beside defect-yolov8n:1')")
    page.locator("#delivery tr:has-text('defect-yolov8n:2') button:has-text('Promote')").click()
    page.wait_for_selector("#delivery caption:has-text('The gate refused')")
    assert "val split" in page.text_content("#delivery table.metrics:has(caption:has-text('gate'))")
    assert "shadow_started defect-yolov8n:2" in page.text_content("#delivery ul")
    shot(page, "models-delivery")


def test_qa_reads_without_buttons(page: Any, server: Server, tmp_path):
    if server.services.model_desk is None:
        attach_desk(server, tmp_path)
    assert page.context.request.post(f"{server.url}/api/v1/session", data={"token": server.qa}).ok
    page.goto("/models")
    page.wait_for_selector("#delivery table caption:has-text('Versions on line-1')")
    assert page.locator("#delivery button").count() == 0


def test_ml_sees_the_part_model_section_with_promote_and_rollback_and_no_shadow(page: Any, server: Server, tmp_path):
    from tests.api.test_part_model_delivery import add_part_version

    token = attach_desk(server, tmp_path)
    registry = tmp_path / "weights"
    add_part_version(registry, 2)
    add_part_version(registry, 3)
    sync = server.services.sync
    assert sync is not None
    gate = GateConfig(parity_images=0)  # no gate set here: the gate refuses (409 with its figures)
    parts = DeskParts(
        registry, "line-1", "edge-test", role="part", sync=sync, gate=gate, gate_data=tmp_path / "no.yaml"
    )
    part_desk = ModelDesk(ModelStates(sync.log.engine), parts)
    part_desk.start_line(Version("part-yolov8n", 2))
    server.services.part_desk = part_desk
    try:
        assert page.context.request.post(f"{server.url}/api/v1/session", data={"token": token}).ok
        page.on("dialog", lambda d: d.accept("from the UI test"))
        page.goto("/models")
        section = "#delivery article[aria-label='part model delivery']"
        page.wait_for_selector(f"{section} caption:has-text('Part model versions on line-1')")
        assert "part model: serving part-yolov8n:2" in page.text_content(f"{section} h2")
        row = page.locator(f"{section} tr:has-text('part-yolov8n:3')")
        assert row.locator(".badge").text_content() == "registered"
        assert (
            row.locator("button:has-text('Shadow')").count() == 0 and row.locator("button:has-text('Promote')").count()
        )
        assert page.locator("#delivery tr:has-text('part-yolov8n')").count() == 2  # not in the defect table
        row.locator("button:has-text('Promote')").click()
        page.wait_for_selector(f"{section} caption:has-text('The gate refused')")
        assert "QA reviews defects" in page.text_content(f"{section} table.metrics:has(caption:has-text('gate'))")
        assert page.locator(f"{section} button:has-text('Roll back the part model')").count() == 1
        shot(page, "models-part-delivery")
    finally:
        server.services.part_desk = None
