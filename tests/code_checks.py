"""mypy over the product packages, started in the background when the session starts.

mypy is the suite's dearest single check (~45 s on a busy 2-core host, from a fresh clone with
no cache) and needs nothing from the other tests, so when ``test_mypy_is_clean`` is among the
collected tests (conftest's ``pytest_collection_finish``) it starts at once in a process of its
own, beside the rest of the run, and the test only reads its verdict. Run on its own (or if the
start hook did not run) the test runs mypy itself, as before. Either way the test passes only on
mypy's exit 0 and shows mypy's output when it fails.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from typing import IO

from tests.conftest import REPO

PACKAGES = ["inspection", "camera", "sync", "floor", "api"]
MYPY = [sys.executable, "-m", "mypy", *PACKAGES, "examples"]
MYPY_TEST = "tests/test_code_style.py::test_mypy_is_clean"

_running: tuple[subprocess.Popen[bytes], IO[bytes]] | None = None


def start_if_selected(nodeids: list[str]) -> None:
    """Start mypy in the background if the session will run ``test_mypy_is_clean``."""
    global _running
    if _running is None and MYPY_TEST in nodeids:
        out = tempfile.TemporaryFile()  # noqa: SIM115 (closed by mypy_result or stop)
        _running = (subprocess.Popen(MYPY, cwd=REPO, stdout=out, stderr=subprocess.STDOUT), out)


def mypy_result(timeout: float = 600) -> tuple[int, str]:
    """mypy's exit code and output: of the background run if one was started, else of a run now."""
    global _running
    if _running is None:
        r = subprocess.run(MYPY, cwd=REPO, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr
    proc, out = _running
    _running = None
    try:
        code = proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out.seek(0)
    text = out.read().decode(errors="replace")
    out.close()
    return code, text


def stop() -> None:
    """End a background mypy the session did not wait for (a run stopped early, ``-x``)."""
    global _running
    if _running is not None:
        proc, out = _running
        _running = None
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        out.close()
