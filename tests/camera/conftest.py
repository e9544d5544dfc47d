"""Every camera test leaves no capture thread behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest


def _capture_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("camera-") and t.is_alive()]


@pytest.fixture(autouse=True)
def no_leftover_capture_threads() -> Iterator[None]:
    before = set(_capture_threads())
    yield
    deadline = time.monotonic() + 3.0
    while set(_capture_threads()) - before and time.monotonic() < deadline:
        time.sleep(0.02)
    left = set(_capture_threads()) - before
    assert not left, f"capture threads still running after the test: {sorted(left)}"
