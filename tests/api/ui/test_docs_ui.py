"""/docs and /redoc in real headless Chromium with every request outside the server refused (a line network)."""

from __future__ import annotations

from typing import Any

from tests.api.ui.support import VIEWPORT, Server, shot


def _offline(page: Any, server: Server) -> list[str]:
    """Refuse every request that does not go to the server; return the list of what was refused."""
    refused: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(server.url):
            r.continue_()
        else:
            refused.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return refused


def test_swagger_ui_renders_with_no_network(page: Any, server: Server) -> None:
    refused = _offline(page, server)
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .opblock-tag", timeout=20_000)  # the operations, grouped by tag
    assert page.locator(".opblock").count() > 20
    assert "inspections" in page.inner_text(".swagger-ui")
    assert refused == []
    shot(page, "docs-swagger-offline")


def test_redoc_renders_with_no_network(browser: Any, server: Server) -> None:
    ctx = browser.new_context(viewport=VIEWPORT, base_url=server.url)
    page = ctx.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    refused = _offline(page, server)
    try:
        page.goto("/redoc")
        page.wait_for_function("() => document.body.innerText.includes('inspections')", timeout=20_000)
        assert page.locator("[role=menuitem]").count() > 5
        shot(page, "docs-redoc-offline")
    finally:
        ctx.close()
    assert refused == []  # ReDoc's CDN logo is blocked by the page's CSP before any request is made
    assert all("Content Security Policy" in m and "cdn.redoc.ly" in m for m in console), console


def test_only_the_known_assets_are_served(server: Server) -> None:
    import httpx

    assert httpx.get(server.url + "/docs/assets/swagger-ui.css").status_code == 200
    assert httpx.get(server.url + "/docs/assets/..%2Fcore.py").status_code == 404
    assert httpx.get(server.url + "/docs/assets/core.py").status_code == 404
