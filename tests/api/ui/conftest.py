"""Fixtures of the web UI tests: the apps under uvicorn, one Chromium, a page per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright import sync_api

from tests.api.ui.support import CHROMIUM, Server, opened, serving


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


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    with opened(browser, server.url) as pg:
        yield pg


@pytest.fixture
def ref_page(browser: Any, ref_server: Server) -> Iterator[Any]:
    with opened(browser, ref_server.url) as pg:
        yield pg
