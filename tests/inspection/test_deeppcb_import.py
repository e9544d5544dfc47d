"""The DeepPCB importer: both separators, deterministic split, card, and every kind of bad row."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import yaml

from inspection.core.errors import DatasetError
from inspection.ml.datasets.deeppcb import import_deeppcb, is_validation
from inspection.ml.datasets.yolo import load_data_yaml


def _label_files(src: Path) -> list[Path]:
    return sorted((src / "PCBData").rglob("*_not/*.txt"))


@pytest.mark.parametrize("sep", [",", " "])
def test_import_writes_yolo_dataset(deeppcb_factory, tmp_path, sep):
    src = deeppcb_factory(boards=10, sep=sep)
    card = import_deeppcb(src, tmp_path / "out", val_percent=30, background_percent=0)
    spec = load_data_yaml(tmp_path / "out" / "data.yaml")
    assert spec.names == ("open", "short", "mousebite", "spur", "copper", "pin-hole")
    total_rows = sum(len(f.read_text().split("\n")) - 1 for f in _label_files(src))
    assert card["splits"]["train"]["boxes"] + card["splits"]["val"]["boxes"] == total_rows
    assert card["splits"]["train"]["images"] + card["splits"]["val"]["images"] == 10
    # every label line round-trips to the source box in pixels
    label = _label_files(src)[0]
    board_id = label.stem
    split = "val" if is_validation(board_id, 30) else "train"
    image = tmp_path / "out" / "images" / split / f"{board_id}_test.jpg"
    xyxy, cls = spec.read_labels(image, (640, 640))
    first = [float(v) for v in label.read_text().split("\n")[0].replace(",", " ").split()]
    assert xyxy[0].tolist() == pytest.approx(first[:4], abs=0.01)
    assert cls[0] == int(first[4]) - 1
    assert (tmp_path / "out" / "CARD.md").read_text().startswith("# Dataset card")
    assert json.loads((tmp_path / "out" / "card.json").read_text())["source_sha256"] == card["source_sha256"]


def test_split_is_deterministic_by_id(deeppcb_factory, tmp_path):
    src = deeppcb_factory(boards=12)
    import_deeppcb(src, tmp_path / "a", val_percent=40)
    import_deeppcb(src, tmp_path / "b", val_percent=40)
    a = sorted(p.name for p in (tmp_path / "a" / "images" / "val").iterdir())
    b = sorted(p.name for p in (tmp_path / "b" / "images" / "val").iterdir())
    assert a == b and a
    assert all(is_validation(n.removesuffix("_test.jpg"), 40) for n in a)


def test_templates_become_backgrounds_in_train_only(deeppcb_factory, tmp_path):
    src = deeppcb_factory(boards=10)
    card = import_deeppcb(src, tmp_path / "out", val_percent=30, background_percent=100)
    train = card["splits"]["train"]
    assert train["background_images"] == train["images"] // 2
    assert card["splits"]["val"]["background_images"] == 0
    for lbl in (tmp_path / "out" / "labels" / "train").glob("*_temp.txt"):
        assert lbl.read_text() == ""


def test_test_list_becomes_test_split(deeppcb_factory, tmp_path):
    src = deeppcb_factory(boards=6, lists=("trainval.txt", "test.txt"))
    card = import_deeppcb(src, tmp_path / "out")
    assert card["splits"]["test"]["images"] == 3
    assert "test" in yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())


def _break(src: Path, how: str) -> str:
    labels = _label_files(src)
    if how == "missing image":
        img = next((src / "PCBData").rglob("*_test.jpg"))
        img.unlink()
        return img.name
    if how == "box outside":
        labels[0].write_text("600,600,700,650,1\n")
        return labels[0].name
    if how == "unknown type":
        labels[1].write_text("10,10,40,40,9\n")
        return labels[1].name
    if how == "empty label":
        labels[2].write_text("")
        return labels[2].name
    if how == "corrupt image":
        img = sorted((src / "PCBData").rglob("*_temp.jpg"))[0]
        img.write_bytes(b"not a jpeg at all")
        return img.name
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["missing image", "box outside", "unknown type", "empty label", "corrupt image"])
def test_bad_input_is_named_and_nothing_is_written(deeppcb_factory, tmp_path, how):
    good = deeppcb_factory(boards=6)
    out = tmp_path / "out"
    import_deeppcb(good, out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    card_before = (out / "card.json").read_text()
    bad = deeppcb_factory(boards=6, seed=1)
    culprit = _break(bad, how)
    with pytest.raises(DatasetError) as err:
        import_deeppcb(bad, out)
    assert culprit in str(err.value)
    assert "nothing imported" in str(err.value)
    # the dataset already in place is untouched, no temporary folder is left
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert (out / "card.json").read_text() == card_before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_all_problems_are_listed(deeppcb_factory, tmp_path):
    bad = deeppcb_factory(boards=6)
    names = {_break(bad, "unknown type"), _break(bad, "box outside")}
    with pytest.raises(DatasetError) as err:
        import_deeppcb(bad, tmp_path / "out")
    assert all(n in str(err.value) for n in names)
    assert len(err.value.problems) == 2
    assert not (tmp_path / "out").exists()


def test_not_a_deeppcb_folder(tmp_path):
    with pytest.raises(DatasetError, match="not a DeepPCB folder"):
        import_deeppcb(tmp_path, tmp_path / "out")
    with pytest.raises(DatasetError, match="no such folder"):
        import_deeppcb(tmp_path / "nope", tmp_path / "out")


def test_imported_images_are_the_source_bytes(deeppcb_factory, tmp_path):
    src = deeppcb_factory(boards=4)
    import_deeppcb(src, tmp_path / "out", val_percent=50)
    for img in (tmp_path / "out" / "images").rglob("*.jpg"):
        original = next((src / "PCBData").rglob(img.name))
        assert img.read_bytes() == original.read_bytes()
        assert cv2.imread(str(img)) is not None
