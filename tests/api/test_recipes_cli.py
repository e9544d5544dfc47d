"""``twinspect recipes``: add / list / show / import-deeppcb, and bad input as one line naming the file or field."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np

from tests.api.test_cli_errors import _error_line
from tests.cli import run_cli
from tests.conftest import draw_board, real_board_subset


def _golden(path: Path, seed: int, size: tuple[int, int] = (96, 128)) -> Path:
    grey = draw_board(np.random.default_rng(seed), max(size))[: size[0], : size[1]]
    cv2.imwrite(str(path), np.ascontiguousarray(grey))
    return path


def test_add_list_show_and_import(tmp_path: Path):
    data = ["--data-dir", str(tmp_path / "data")]
    golden = _golden(tmp_path / "golden.png", 1)
    r = run_cli(
        "recipes",
        "add",
        "pcb-a",
        "--golden",
        str(golden),
        "--mask",
        "2,3,40,20:serial sticker",
        "--align-method",
        "features",
        "--min-score",
        "0.7",
        "--description",
        "rev A",
        "--json",
        *data,
    )
    assert r.returncode == 0, r.stderr
    added = json.loads(r.stdout)
    sha = hashlib.sha256(golden.read_bytes()).hexdigest()
    assert (added["golden_sha256"], added["width"], added["height"]) == (sha, 128, 96)
    assert added["masks"] == [{"x1": 2, "y1": 3, "x2": 40, "y2": 20, "label": "serial sticker"}]
    assert added["align"]["method"] == "features" and added["align"]["min_score"] == 0.7
    assert (tmp_path / "data" / "goldens" / sha[:2] / sha[2:4] / f"{sha}.png").read_bytes() == golden.read_bytes()
    boards = real_board_subset(tmp_path / "boards", 2)
    r = run_cli("recipes", "import-deeppcb", str(boards), *data)
    assert r.returncode == 0 and "2 recipes added or changed" in r.stdout, r.stderr
    r = run_cli("recipes", "import-deeppcb", str(boards), *data)
    assert r.returncode == 0 and "0 recipes added or changed" in r.stdout, r.stderr
    r = run_cli("recipes", "list", "--json", *data)
    names = [x["name"] for x in json.loads(r.stdout)]
    assert len(names) == 3 and names[-1] == "pcb-a" and all(n.startswith("deeppcb-") for n in names[:2])
    r = run_cli("recipes", "show", "pcb-a", *data)
    assert r.returncode == 0 and sha in r.stdout and "serial sticker" in r.stdout and "rev A" in r.stdout


def test_bad_input_is_one_line_naming_the_file_or_field_and_stores_nothing(tmp_path: Path):
    data = ["--data-dir", str(tmp_path / "data")]
    golden = _golden(tmp_path / "golden.png", 2)
    assert run_cli("recipes", "add", "pcb", "--golden", str(golden), *data).returncode == 0
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(cv2.imencode(".jpg", np.full((64, 64), 128, np.uint8))[1].tobytes()[:200])
    other_size = _golden(tmp_path / "small.png", 3, (64, 128))
    cases = [
        (["add", "new", "--golden", str(tmp_path / "missing.png")], "missing.png: no such file"),
        (["add", "new", "--golden", str(corrupt)], "corrupt.jpg: corrupt JPEG image (truncated)"),
        (
            ["add", "new", "--golden", str(golden), "--mask", "0,0,500,10"],
            "--mask[0]: (0,0)-(500,10) is empty or outside the 128x96 golden image",
        ),
        (["add", "new", "--golden", str(golden), "--mask", "1,2,3"], "--mask '1,2,3': expected x1,y1,x2,y2"),
        (["add", "new", "--golden", str(golden), "--align-method", "magic"], "--align-method 'magic'"),
        (["add", "new", "--golden", str(golden), "--min-score", "2"], "--min-score 2.0"),
        (["add", "bad/name", "--golden", str(golden)], "name 'bad/name'"),
        (
            ["add", "pcb", "--golden", str(golden)],
            "'pcb': a recipe of that name exists; replace it explicitly (--replace)",
        ),
        (
            ["add", "pcb", "--golden", str(other_size), "--replace"],
            "small.png: 128x64 image for recipe 'pcb', whose golden is 128x96",
        ),
        (["show", "nope"], "recipe 'nope': no such recipe"),
        (["import-deeppcb", str(tmp_path)], "not a DeepPCB folder"),
    ]
    for args, reason in cases:
        r = run_cli("recipes", *args, *data)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert reason in _error_line(r.stderr), (args, r.stderr)
    r = run_cli("recipes", "list", "--json", *data)
    assert [x["name"] for x in json.loads(r.stdout)] == ["pcb"]
    assert len([p for p in (tmp_path / "data" / "goldens").rglob("*") if p.is_file()]) == 1
