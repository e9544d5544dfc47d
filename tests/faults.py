"""Faults for tests: a small filesystem that really fills and frees, and a camera that lets frames out in phases.

``small_disk(path, mode)`` mounts a tmpfs of a few MB at ``path`` (the test runs as root);
``fill()`` writes a ballast file until the disk refuses (ENOSPC), ``free()`` deletes it.
Where mounting is impossible (not root, no CAP_SYS_ADMIN) or with ``mode="injected"``, the
disk is an ordinary folder and the refusal is injected where the product meets the disk:
``EvidenceStore.put`` raises ``EvidenceFullError`` and every database write raises SQLite's
own "database or disk is full" while the ballast is "in place". ``disk.mode`` says which
ran.
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from camera.frame import Frame
from camera.source import SourceStats
from inspection.core.detections import Detections
from inspection.store import EvidenceStore
from inspection.store.errors import EvidenceFullError

_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|CREATE|DROP|ALTER)\b", re.IGNORECASE)


class SmallDisk:
    """See the module docstring."""

    def __init__(self, root: Path, mode: str) -> None:
        self.root, self.mode = root, mode
        self.full = False
        self.ballast = root / "ballast"
        self.engines: list[Engine] = []

    def fill(self) -> int:
        """Make the disk refuse writes; returns the ballast's size in bytes.

        The write-ahead logs of the attached databases are emptied first (a checkpoint), so
        their next commit needs new space, as on a disk that has been full for a while.
        """
        self.full = True
        if self.mode != "tmpfs":
            return 0
        for engine in self.engines:
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
                chunk = b"\0" * size
                while True:
                    try:
                        os.write(fd, chunk)
                    except OSError as error:
                        if error.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        return self.ballast.stat().st_size

    def free(self) -> None:
        self.full = False
        self.ballast.unlink(missing_ok=True)

    def evidence_store(self, root: Path) -> EvidenceStore:
        """An evidence store on this disk (refusing writes while it is full, in injected mode)."""
        if self.mode == "tmpfs":
            return EvidenceStore(root)
        disk = self

        class InjectedFull(EvidenceStore):
            def put(self, jpeg_bytes: bytes) -> str:
                if disk.full:
                    raise EvidenceFullError(f"cannot write evidence under {root}: no space left (injected ENOSPC)")
                return super().put(jpeg_bytes)

        return InjectedFull(root)

    def attach(self, engine: Engine) -> None:
        """A database on this disk: in injected mode, each write on it fails as SQLite's SQLITE_FULL while full."""
        self.engines.append(engine)
        if self.mode == "tmpfs":
            return

        @event.listens_for(engine, "before_cursor_execute")
        def _full(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if self.full and _WRITE.match(statement):
                raise sqlite3.OperationalError("database or disk is full")


@contextmanager
def small_disk(path: Path, mode: str = "tmpfs", size_mb: int = 16) -> Iterator[SmallDisk]:
    """A ``size_mb`` tmpfs at ``path`` (unmounted after), or an injected-fault folder (see the module docstring)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = False
    if mode == "tmpfs":
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], capture_output=True, text=True
        )
        mounted = r.returncode == 0
        if not mounted:
            mode = "injected"
    try:
        yield SmallDisk(path, mode)
    finally:
        if mounted:
            r = subprocess.run(["umount", str(path)], capture_output=True, text=True)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", str(path)], capture_output=True, text=True)


class GatedSource:
    """A camera that hands out frames only up to ``released`` (the test opens the gate phase by phase).

    It also remembers each frame's true board boxes, so ``OracleDetector`` can answer for the
    part model: the pipeline under test is everything after it.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.camera_id: str = inner.camera_id
        self.released = 0
        self.delivered = 0
        self.truth: dict[int, list[Any]] = {}
        self._cond = threading.Condition()

    def release(self, frames: int) -> None:
        with self._cond:
            self.released += frames
            self._cond.notify_all()

    def start(self) -> None:
        self.inner.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self.released = 1 << 60
            self._cond.notify_all()
        self.inner.stop(timeout)

    def read(self, timeout: float | None = None) -> Frame | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.delivered < self.released, timeout):
                return None
        frame: Frame | None = self.inner.read(timeout)
        if frame is not None:
            with self._cond:
                self.truth[id(frame.image)] = [t.xyxy for t in frame.truth]
                self.delivered += 1
        return frame

    @property
    def drained(self) -> bool:
        return bool(self.inner.drained)

    def stats(self) -> SourceStats:
        return self.inner.stats()  # type: ignore[no-any-return]


class OracleDetector:
    """A part model that finds exactly the boards the simulated frame shows (by the image's identity)."""

    imgsz = (192, 320)
    provider = "test"
    class_names = ("board",)

    def __init__(self, source: GatedSource) -> None:
        self.source = source

    def detect(self, images: list[Any]) -> list[Detections]:
        import numpy as np

        out = []
        for image in images:
            with self.source._cond:
                boxes = self.source.truth.pop(id(image), [])
            n = len(boxes)
            out.append(
                Detections(
                    np.asarray(boxes, np.float32).reshape(n, 4),
                    np.full(n, 0.95, np.float32),
                    np.zeros(n, np.int64),
                    self.class_names,
                )
            )
        return out


class BlankDefects:
    """A defect model that finds nothing (every board passes): the verdict path is what is tested."""

    imgsz = (320, 320)
    provider = "test"

    def __init__(self, names: tuple[str, ...]) -> None:
        self.class_names = names

    def detect(self, images: list[Any]) -> list[Detections]:
        return [Detections.empty(self.class_names) for _ in images]
