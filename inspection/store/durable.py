"""Durable, atomic file writes for content-addressed stores (evidence JPEGs, golden images).

A file is written under a temporary name in its final folder, fsynced, then renamed over
its final name (``os.replace`` is atomic); the folder is fsynced after. A reader sees either
no file or the whole file, never a torn one, even after a power cut.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Make the folder's entries (a rename into it) durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(final: Path, data: bytes, sync_folder: bool = True) -> None:
    """Write ``data`` to ``final`` (its folder must exist) so that it appears whole or not at all.

    With ``sync_folder=False`` the caller fsyncs the folder itself (once for many files).
    Raises OSError; nothing is left behind then.
    """
    fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.stem[:16]}-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, final)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    if sync_folder:
        fsync_dir(final.parent)
