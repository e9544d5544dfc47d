"""``twinspect predict`` over a folder with bad files: each is an error line (JSON and stderr), the others are
inspected, and the exit code says something failed (issue 12, item 10)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from camera.decode import decode, jpeg_truncated
from camera.errors import ImageError
from tests.cli import run_cli
from tests.conftest import real_board_subset


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real boards, one cut short by two bytes (its end-of-image marker), one cut in half, one not an image."""
    src = real_board_subset(tmp_path_factory.mktemp("src"), 3)
    out = tmp_path_factory.mktemp("bad")
    tests = sorted(src.rglob("*_test.jpg"))[:3]
    for i, path in enumerate(tests):
        shutil.copy(path, out / f"{i}_good.jpg")
    data = tests[0].read_bytes()
    (out / "3_no_eoi.jpg").write_bytes(data[:-2])
    (out / "4_half.jpg").write_bytes(data[: len(data) // 2])
    (out / "5_text.jpg").write_bytes(b"hello")
    return out


def test_a_jpeg_without_its_end_is_truncated_and_refused(folder: Path) -> None:
    whole = (folder / "0_good.jpg").read_bytes()
    assert not jpeg_truncated(whole)
    assert jpeg_truncated(whole[:-2]) and jpeg_truncated(whole[:-1]) and jpeg_truncated(whole[:200])
    # OpenCV decodes some of these silently (libjpeg only warns "Premature end of JPEG file"): checked before
    with pytest.raises(ImageError, match="truncated"):
        decode(whole[:-2])


def test_predict_reports_each_bad_file_goes_on_and_exits_non_zero(folder: Path, plain_model: Path) -> None:
    r = run_cli("predict", "-w", str(plain_model), str(folder), "--json")
    assert r.returncode == 2, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [Path(row["image"]).name for row in rows] == sorted(p.name for p in folder.iterdir())  # input order
    good = [row for row in rows if "error" not in row]
    bad = {Path(row["image"]).name: row["error"] for row in rows if "error" in row}
    assert len(good) == 3 and all(row["width"] == 640 and "boxes" in row for row in good)
    assert set(bad) == {"3_no_eoi.jpg", "4_half.jpg", "5_text.jpg"}
    assert "truncated" in bad["3_no_eoi.jpg"]
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("twinspect: error: ")]
    assert len(errors) == 3 and all(any(name in ln for ln in errors) for name in bad), r.stderr
    assert "3 of 6 images could not be inspected" in r.stderr


def test_predict_of_good_files_only_exits_0(folder: Path, plain_model: Path) -> None:
    r = run_cli("predict", "-w", str(plain_model), str(folder / "0_good.jpg"), str(folder / "1_good.jpg"))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("twinspect: error") == 0


def test_predict_pairs_reports_a_truncated_board_and_goes_on(reference_model: Path, tmp_path: Path) -> None:
    src = real_board_subset(tmp_path / "src", 2)
    tests = sorted(src.rglob("*_test.jpg"))[:2]
    for path in tests:
        for p in (path, path.with_name(path.name.replace("_test", "_temp"))):
            shutil.copy(p, tmp_path / p.name)
    cut = tmp_path / tests[1].name
    cut.write_bytes(cut.read_bytes()[:-2])
    r = run_cli("predict", "-w", str(reference_model), str(tmp_path / tests[0].name), str(cut), "--json")
    assert r.returncode == 2, r.stderr
    first, second = (json.loads(line) for line in r.stdout.splitlines())
    assert "error" not in first and first["alignment_score"] > 0.5
    assert "truncated" in second["error"] and second["image"] == str(cut)
    assert f"twinspect: error: {cut}" in r.stderr
