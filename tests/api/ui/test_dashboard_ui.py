"""The dashboard in headless Chromium (issue 12 item 5): throughput while the line ran, several buckets for a short run.

The UI server holds 30 boards, five a minute for six minutes (tests/api/conftest.py). The
dashboard used to divide them by the whole range ("1.4 /h") and draw one daily bar.
"""

from __future__ import annotations

from typing import Any

from tests.api.ui.support import Server, shot, sign_in_api


def test_the_dashboard_shows_the_rate_while_running_and_a_bar_per_minute(page: Any, server: Server) -> None:
    sign_in_api(page, server)
    page.goto("/dashboard?range=all")  # bucket: auto
    page.wait_for_selector("#trend svg rect")
    bars = page.eval_on_selector_all("#trend svg rect title", "ts => ts.map(t => t.textContent)")
    starts = {t.split(": ")[0] for t in bars}
    assert len(starts) == 6, bars  # one bucket a minute, not one for the whole run
    assert all("/h while running" in t for t in bars if not t.startswith(sorted(starts)[0]))
    kpi = page.text_content("#kpis .kpi:has-text('Throughput') .value")
    assert kpi == "348 /h", kpi  # 29 boards end a gap of the line's 300 s of running time
    assert "line ran 5 min" in page.text_content("#kpis .kpi:has-text('Throughput')")
    assert "one bar per minute" in page.text_content("#trend svg")
    page.mouse.move(0, 0)
    shot(page, "dashboard-throughput")
