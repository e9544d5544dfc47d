"""Content hashes used by dataset cards and model cards."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex sha256 of one file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(files: Iterable[Path], root: Path) -> str:
    """One sha256 over many files: each file's path relative to root, then its bytes.

    The files are taken in sorted order of their relative path, so the hash does not
    depend on the order the caller found them in.
    """
    digest = hashlib.sha256()
    for rel, path in sorted((p.relative_to(root).as_posix(), p) for p in files):
        digest.update(rel.encode() + b"\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()
