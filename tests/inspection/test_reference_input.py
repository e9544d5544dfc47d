"""The 3-plane reference input: composition, the importer's reference datasets, and plane parity.

Parity: the planes (board, golden, difference) must reach the network the same way in
Ultralytics' training loader and in our serving preprocessing, and no training
augmentation may mix them (Ultralytics' HSV jitter would; the test shows that it does).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from inspection.core.errors import DatasetError
from inspection.inference.preprocess import letterbox, to_tensor
from inspection.ml.datasets.deeppcb import import_deeppcb
from inspection.ml.datasets.yolo import load_data_yaml
from inspection.ml.training import PLANE_MIXING_OFF, augmentation
from inspection.reference.planes import BOARD, DIFF, GOLDEN, Jitter, compose, jitter_pair, split_planes
from tests.conftest import draw_board


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    golden = (draw_board(rng) // 2).astype(np.uint8)  # 0 / 127: room above for brighter defects
    board = golden.copy()
    cv2.circle(board, (300, 300), 20, 255, -1)  # a defect brighter than anything on the golden
    cv2.rectangle(board, (100, 420), (160, 470), 255, -1)
    return board, golden


def test_compose_puts_board_golden_and_difference_in_fixed_planes():
    board, golden = _pair()
    ref = compose(cv2.cvtColor(board, cv2.COLOR_GRAY2BGR), golden)
    assert ref.shape == (640, 640, 3) and ref.dtype == np.uint8
    b, g, d = split_planes(ref)
    assert (b == board).all() and (g == golden).all()
    assert (d.astype(int) == np.abs(board.astype(int) - golden.astype(int))).all()
    assert (BOARD, GOLDEN, DIFF) == (0, 1, 2)
    with pytest.raises(ValueError, match="differ in size"):
        compose(board, golden[:600])


def test_jitter_moves_the_golden_against_the_board_but_keeps_the_difference_exact():
    board, golden = _pair()
    rng = np.random.default_rng(3)
    moved = [jitter_pair(board, golden, rng, Jitter(exact_p=0.0)) for _ in range(4)]
    for ref in moved:
        b, g, d = split_planes(ref)
        assert (d.astype(int) == np.abs(b.astype(int) - g.astype(int))).all()
        assert (g != golden).mean() > 0.001  # shifted or rotated by a few pixels
    exact = jitter_pair(board, golden, rng, Jitter(exact_p=1.0))
    assert (exact == compose(board, golden)).all()


def test_reference_import_writes_png_pairs_and_good_examples(deeppcb_factory, tmp_path):
    src = deeppcb_factory(boards=8)
    card = import_deeppcb(src, tmp_path / "ref", val_percent=30, input_kind="reference", seed=1)
    spec = load_data_yaml(tmp_path / "ref" / "data.yaml")
    assert spec.input == "reference" and card["input"] == "reference"
    train = sorted(p.name for p in spec.images("train"))
    assert train and all(n.endswith(".png") for n in train)
    tested = [n for n in train if n.endswith("_test.png")]
    assert len(train) == 2 * len(tested)  # every training template is also a good example
    for lbl in (tmp_path / "ref" / "labels" / "train").glob("*_temp.txt"):
        assert lbl.read_text() == ""
    val = spec.images("val")
    img = cv2.imread(str(val[0]))
    test = cv2.imread(str(next(src.rglob(val[0].name.replace(".png", ".jpg")))), cv2.IMREAD_GRAYSCALE)
    assert (img[:, :, BOARD] == test).all()  # validation pairs are composed as shipped (lossless)
    again = import_deeppcb(src, tmp_path / "ref2", val_percent=30, input_kind="reference", seed=1)
    assert again["splits"] == card["splits"]
    a = cv2.imread(str(tmp_path / "ref" / "images" / "train" / train[0]))
    b = cv2.imread(str(tmp_path / "ref2" / "images" / "train" / train[0]))
    assert (a == b).all()  # the jitter is seeded per board: an import is reproducible


def test_reference_import_refuses_a_template_of_another_size(deeppcb_factory, tmp_path):
    src = deeppcb_factory(boards=3)
    temp = next(src.rglob("*_temp.jpg"))
    cv2.imwrite(str(temp), np.zeros((320, 320), np.uint8))
    with pytest.raises(DatasetError) as err:
        import_deeppcb(src, tmp_path / "ref", input_kind="reference")
    assert temp.name in str(err.value) and "320x320" in str(err.value)
    assert not (tmp_path / "ref").exists()
    with pytest.raises(DatasetError, match="input"):
        import_deeppcb(src, tmp_path / "ref", input_kind="stereo")


def test_data_yaml_input_field_is_validated(tmp_path):
    (tmp_path / "images" / "val").mkdir(parents=True)
    data = {"path": ".", "val": "images/val", "names": {0: "a"}, "input": "colour"}
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(DatasetError, match="'input' must be"):
        load_data_yaml(tmp_path / "data.yaml")


def _ultralytics_item(images_dir, hyp_overrides: dict[str, float], augment: bool) -> np.ndarray:
    """The image tensor Ultralytics' training loader feeds the network (C, H, W), as numpy."""
    from inspection.inference.offline import ultralytics

    ultralytics()  # offline guards first
    from ultralytics.cfg import get_cfg
    from ultralytics.data.dataset import YOLODataset

    hyp = get_cfg(overrides={"mosaic": 0.0, "mixup": 0.0, "cutmix": 0.0, "copy_paste": 0.0, **hyp_overrides})
    ds = YOLODataset(
        img_path=str(images_dir),
        imgsz=640,
        augment=augment,
        hyp=hyp,
        rect=False,
        batch_size=1,
        data={"names": {0: "a"}, "nc": 1, "channels": 3},
        task="detect",
    )
    return np.asarray(ds[0]["img"].numpy())


def _write_dataset(root, image: np.ndarray) -> None:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "b_test.png"), image)
    (root / "labels" / "b_test.txt").write_text("0 0.47 0.47 0.06 0.06\n")


def test_training_loader_and_serving_preprocess_feed_the_same_planes(tmp_path):
    board, golden = _pair()
    ref = compose(board, golden)
    _write_dataset(tmp_path / "ds", ref)
    trained = _ultralytics_item(tmp_path / "ds" / "images", augmentation(_spec("reference")), augment=False)
    served = to_tensor([letterbox(ref, (640, 640))[0]], np.float32)[0]
    assert trained.shape == served.shape == (3, 640, 640)
    assert np.array_equal(trained, np.rint(served * 255).astype(np.uint8))
    # network channel 0 is the difference, 1 the golden, 2 the board (OpenCV planes reversed)
    assert np.array_equal(trained[0], ref[:, :, DIFF]) and np.array_equal(trained[2], ref[:, :, BOARD])


def _spec(kind: str):
    from pathlib import Path

    from inspection.ml.datasets.yolo import DatasetSpec

    return DatasetSpec(Path("x.yaml"), Path("."), ("a",), {}, input=kind)


def _plane_error(t: np.ndarray) -> float:
    """How far channel 0 is from |board - golden| (exact for a board brighter than its golden)."""
    return float(np.abs(t[0].astype(int) - (t[2].astype(int) - t[1].astype(int))).max())


def test_augmentation_keeps_the_planes_as_data_and_hsv_jitter_would_not(tmp_path):
    board, golden = _pair()
    _write_dataset(tmp_path / "ds", compose(board, golden))
    assert augmentation(_spec("image")) == {}
    geometric = {"fliplr": 1.0, "degrees": 0.0, "translate": 0.0, "scale": 0.0}
    safe = _ultralytics_item(tmp_path / "ds" / "images", {**geometric, **PLANE_MIXING_OFF}, augment=True)
    assert _plane_error(safe) <= 1  # flipped, but each pixel still reads board, golden, |difference|
    assert np.array_equal(safe[2][:, ::-1], board)
    mixed = _ultralytics_item(
        tmp_path / "ds" / "images", {**geometric, "hsv_h": 0.5, "hsv_s": 0.9, "hsv_v": 0.0}, augment=True
    )
    assert _plane_error(mixed) > 10  # colour jitter would have mixed the planes
