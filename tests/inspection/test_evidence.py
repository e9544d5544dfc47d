"""inspection.store.evidence: content-addressed, atomic JPEG files, and the JPEG encoder."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection.store import EvidenceError, EvidenceNotFoundError, EvidenceStore, StoreError, encode_jpeg


def board(seed: int = 0, shape: tuple[int, ...] = (60, 80, 3)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros(shape, np.uint8)
    for _ in range(6):
        x1, y1 = (int(v) for v in rng.integers(0, 50, 2))
        cv2.rectangle(img, (x1, y1), (x1 + 20, y1 + 8), (255, 255, 255), -1)
    return img


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_encode_jpeg_decodes_back_to_the_image():
    img = board()
    data = encode_jpeg(img, 95)
    assert data[:3] == b"\xff\xd8\xff"
    back = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert back.shape == img.shape
    assert float(np.abs(back.astype(np.int16) - img).mean()) < 6.0
    assert len(encode_jpeg(img, 20)) < len(data)
    grey = encode_jpeg(img[:, :, 0], 90)
    assert cv2.imdecode(np.frombuffer(grey, np.uint8), cv2.IMREAD_UNCHANGED).shape == img.shape[:2]


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4, 3), np.float32),
        np.zeros((4, 4, 4), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
        np.zeros((2, 2, 2, 3), np.uint8),
    ],
)
def test_encode_jpeg_refuses_what_is_not_an_image(bad: np.ndarray):
    with pytest.raises(EvidenceError, match="uint8"):
        encode_jpeg(bad)


def test_encode_jpeg_refuses_bad_quality():
    with pytest.raises(EvidenceError, match="quality"):
        encode_jpeg(board(), 0)


def test_put_writes_a_content_addressed_file_and_get_reads_it(tmp_path: Path):
    store = EvidenceStore(tmp_path / "ev")
    data = encode_jpeg(board())
    sha = store.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.path(sha) == tmp_path / "ev" / sha[:2] / sha[2:4] / f"{sha}.jpg"
    assert store.path(sha).read_bytes() == data
    assert store.get(sha) == data and store.exists(sha)
    assert files_under(tmp_path) == [store.path(sha)]  # no temp file left behind


def test_put_is_idempotent(tmp_path: Path):
    store = EvidenceStore(tmp_path)
    data = encode_jpeg(board(1))
    sha = store.put(data)
    stamp = store.path(sha).stat().st_mtime_ns
    os.utime(store.path(sha), ns=(stamp - 10**9, stamp - 10**9))
    assert store.put(data) == sha
    assert store.path(sha).stat().st_mtime_ns == stamp - 10**9  # not rewritten
    other = store.put(encode_jpeg(board(2)))
    assert other != sha and len(files_under(tmp_path)) == 2


def test_concurrent_puts_of_the_same_bytes_leave_one_whole_file(tmp_path: Path):
    store = EvidenceStore(tmp_path)
    data = encode_jpeg(board(3, (400, 400, 3)))
    shas: list[str] = []
    threads = [threading.Thread(target=lambda: shas.append(store.put(data))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(shas)) == 1 and len(shas) == 6
    assert files_under(tmp_path) == [store.path(shas[0])]
    assert store.get(shas[0]) == data


def test_a_failed_write_leaves_neither_file_nor_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = EvidenceStore(tmp_path)

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(EvidenceError, match="No space left"):
        store.put(encode_jpeg(board()))
    assert files_under(tmp_path) == []


def test_put_refuses_bytes_that_are_not_jpeg(tmp_path: Path):
    ok, png = cv2.imencode(".png", board())
    assert ok
    with pytest.raises(EvidenceError, match="not a JPEG"):
        EvidenceStore(tmp_path).put(png.tobytes())


def test_get_missing_and_malformed_names(tmp_path: Path):
    store = EvidenceStore(tmp_path)
    with pytest.raises(EvidenceNotFoundError):
        store.get("a" * 64)
    for bad in ("../../etc/passwd", "A" * 64, "a" * 63, ""):
        with pytest.raises(EvidenceError, match="sha256"):
            store.path(bad)
    assert issubclass(EvidenceError, StoreError)


def test_get_detects_a_corrupted_file(tmp_path: Path):
    store = EvidenceStore(tmp_path)
    sha = store.put(encode_jpeg(board()))
    path = store.path(sha)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(EvidenceError, match="corrupt"):
        store.get(sha)
