"""mypy over the product packages for ``test_mypy_is_clean``: from a cache kept outside the checkout,
started in the background when the session starts.

mypy was the suite's dearest single check (43 s on a busy 2-core host) because every run started
cold: its cache lived in the checkout, and CI runs in a fresh clone. The cache now lives beside
the environment (``~/.cache/twinspect/mypy``, or ``TWINSPECT_MYPY_CACHE``): each run copies it,
checks with mypy's own incremental mode (which re-checks every module whose source or whose
dependencies changed, and starts cold on another mypy version), and puts its cache back as the
next run's seed. Runs side by side each work on their own copy; the seed is replaced whole, so a
run that finds none, or one being replaced, just starts cold. A warm run takes a few seconds.

When ``test_mypy_is_clean`` is among the collected tests (conftest's ``pytest_collection_finish``)
mypy starts at once in a process of its own, beside the rest of the run (on a 2-core box, on the
core the mostly single-threaded suite leaves idle), and the test only reads its verdict. Run on
its own, under pytest-xdist (whose workers run side by side already), or if the start hook did not
run, the test runs mypy itself. Either way the test passes only on mypy's exit 0 and shows mypy's
output when it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ["inspection", "camera", "sync", "floor", "api"]
MYPY = [sys.executable, "-m", "mypy", *PACKAGES, "examples"]
MYPY_TEST = "tests/test_code_style.py::test_mypy_is_clean"
SEED = Path(os.environ.get("TWINSPECT_MYPY_CACHE") or Path.home() / ".cache" / "twinspect" / "mypy")


class MypyRun:
    """One mypy run on a copy of the seed cache, in a folder of its own."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="twinspect-mypy-"))
        self.cache = self.work / "cache"
        try:
            if SEED.is_dir():
                shutil.copytree(SEED, self.cache)
        except (OSError, shutil.Error):  # the seed was being replaced: start cold
            shutil.rmtree(self.cache, ignore_errors=True)
        self.out = (self.work / "out.txt").open("wb")
        self.proc = subprocess.Popen(
            [*MYPY, "--cache-dir", str(self.cache)], cwd=REPO, stdout=self.out, stderr=subprocess.STDOUT
        )

    def result(self, timeout: float = 600) -> tuple[int, str]:
        """mypy's exit code and output; its cache becomes the next run's seed."""
        try:
            code = self.proc.wait(timeout)
            self.out.close()
            text = (self.work / "out.txt").read_text(errors="replace")
            _publish(self.cache)
            return code, text
        finally:
            self.discard()

    def discard(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()
        shutil.rmtree(self.work, ignore_errors=True)


def _publish(cache: Path) -> None:
    """Replace the seed with ``cache`` (renamed into place; any failure leaves the seed as it was or absent)."""
    if not cache.is_dir():
        return
    new = SEED.with_name(f"{SEED.name}.new-{os.getpid()}")
    old = SEED.with_name(f"{SEED.name}.old-{os.getpid()}")
    try:
        SEED.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(cache), str(new))
        if SEED.exists():
            SEED.rename(old)
        new.rename(SEED)
    except OSError:  # another run replaced it at the same moment: the seed only saves time
        pass
    finally:
        shutil.rmtree(new, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


_running: MypyRun | None = None


def start_if_selected(nodeids: list[str]) -> None:
    """Start mypy in the background if the session will run ``test_mypy_is_clean``."""
    global _running
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker collects every test: the one that runs it runs mypy
        return
    if _running is None and MYPY_TEST in nodeids:
        _running = MypyRun()


def mypy_result(timeout: float = 600) -> tuple[int, str]:
    """mypy's exit code and output: of the background run if one was started, else of a run now."""
    global _running
    run, _running = _running or MypyRun(), None
    return run.result(timeout)


def stop() -> None:
    """End a background mypy the session did not wait for (a run stopped early, ``-x``)."""
    global _running
    if _running is not None:
        _running.discard()
        _running = None
