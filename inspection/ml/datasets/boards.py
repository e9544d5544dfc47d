"""The DeepPCB board reader that the simulated line is handed (camera/ reads no data set itself).

``board_pool(folder, list_name, split, val_percent)`` is a ``camera.boards.BoardReader``:
a DeepPCB layout gives its tested boards (defective, with their boxes) and templates
(good) of one list, optionally one side of the importer's split; any other folder gives
its images, truth unknown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from camera.boards import BoardPool, BoardSprite, load_folder_boards, read_grey
from camera.errors import CameraError
from inspection.core.errors import DatasetError
from inspection.ml.datasets.deeppcb import find_pcbdata, is_validation, parse_label_file, read_list

PRODUCT_PREFIX = "deeppcb-"


def deeppcb_product(board_id: str) -> str:
    """The product (recipe name) of one DeepPCB board, ``deeppcb-00041000``: each board is its own product,
    its template the golden."""
    return f"{PRODUCT_PREFIX}{board_id}"


def load_deeppcb_boards(pcb: Path, list_name: str = "trainval.txt") -> tuple[list[BoardSprite], list[BoardSprite]]:
    """Tested boards (defective, with their boxes) and templates (defect-free) of one list."""
    pcb = find_pcbdata(pcb)
    tested, templates = [], []
    problems: list[str] = []
    for listed, label, _ in read_list(pcb, list_name):
        stem = listed.with_suffix("")
        test_path = stem.with_name(stem.name + "_test.jpg")
        temp_path = stem.with_name(stem.name + "_temp.jpg")
        img = read_grey(test_path)  # decoded once to validate it and its labels, then let go
        boxes = parse_label_file(label, (img.shape[1], img.shape[0]), problems)
        arr = np.array([[b.x1, b.y1, b.x2, b.y2, b.class_id] for b in boxes], np.float32).reshape(-1, 5)
        if not temp_path.is_file():
            problems.append(f"{temp_path}: missing template image")
        product = deeppcb_product(stem.name)
        tested.append(BoardSprite(test_path.name, test_path, True, arr, product))
        templates.append(BoardSprite(temp_path.name, temp_path, False, np.zeros((0, 5), np.float32), product))
    if problems:
        raise DatasetError(f"{pcb}: {len(problems)} bad label file(s)", problems)
    return tested, templates


def board_pool(folder: Path, list_name: str | None = None, split: str = "all", val_percent: int = 20) -> BoardPool:
    """A DeepPCB layout (``*_test.jpg`` defective, ``*_temp.jpg`` good) or any folder of part images.

    ``list_name``: the DeepPCB list to show (default: trainval.txt, else test.txt);
    ``split``: all, or the val / train side of the importer's split (``val_percent``).
    """
    source = Path(folder)
    if not source.exists():
        raise CameraError(f"{source}: no such board folder")
    pcb = source / "PCBData" if (source / "PCBData").is_dir() else source
    if list_name is None:
        list_name = (
            "trainval.txt" if (pcb / "trainval.txt").is_file() or not (pcb / "test.txt").is_file() else "test.txt"
        )
    if not ((source / "PCBData").is_dir() or (source / list_name).is_file()):
        return BoardPool.from_folder(source)
    if not (pcb / list_name).is_file():
        raise CameraError(f"{pcb / list_name}: no such DeepPCB list in {source}")
    tested, templates = load_deeppcb_boards(source, list_name)
    if split != "all":
        want_val = split == "val"
        tested = [b for b in tested if is_validation(b.board_id, val_percent) == want_val]
        templates = [b for b in templates if is_validation(b.board_id, val_percent) == want_val]
    return BoardPool(tuple(tested), tuple(templates))


def load_boards(source: Path) -> list[BoardSprite]:
    """DeepPCB layout (tested boards and templates) if it is one, else a plain image folder."""
    source = Path(source)
    if not source.exists():
        raise DatasetError(f"{source}: no such folder")
    if (source / "PCBData").is_dir() or (source / "trainval.txt").is_file() or (source / "test.txt").is_file():
        tested, templates = load_deeppcb_boards(source)
        return tested + templates
    return load_folder_boards(source)
