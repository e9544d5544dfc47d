"""The live line page in real headless Chromium: a storage fault is shown while it lasts, then goes."""

from __future__ import annotations

import time
from typing import Any

from tests.api.ui.support import FakeLive, Server, shot, sign_in_api


def test_a_fault_is_shown_on_the_live_page_until_it_clears(page: Any, server: Server) -> None:
    live = server.services.engine
    assert isinstance(live, FakeLive)
    sign_in_api(page, server)
    page.goto("/live")
    page.wait_for_selector("#counters dd")
    page.wait_for_selector("#cameras figcaption strong")
    captions = page.locator("#cameras figcaption").all_inner_texts()
    assert len(captions) == 2 and all("fps" in c for c in captions), captions
    assert not any(word in c.split() for c in captions for word in ("null", "undefined")), captions
    assert page.locator("#live-faults .fault").count() == 0
    live.faults = [{"component": "storage", "reason": "evidence: no space left on device", "since": time.time()}]
    try:
        page.wait_for_selector("#live-faults .fault")
        assert "storage: evidence: no space left on device" in page.inner_text("#live-faults")
        assert "bad" in (page.get_attribute("#line-state", "class") or "").split()
        shot(page, "live-fault")
    finally:
        live.faults = []
    page.wait_for_selector("#live-faults .fault", state="detached")
    assert "bad" not in (page.get_attribute("#line-state", "class") or "").split()
