"""Board images for the simulated line: DeepPCB boards (with ground truth) or any folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inspection.datasets.yolo import IMAGE_SUFFIXES
from inspection.errors import DatasetError


@dataclass(frozen=True, eq=False)
class BoardSprite:
    """One board image as the line shows it, with what is known about it.

    ``source`` is the image file (read each time the board is shown, so a line over a
    thousand boards does not hold them all in memory) or an in-memory grey image.
    """

    name: str  # source file name, e.g. 00041000_test.jpg
    source: Path | np.ndarray  # image file, or HxW uint8 grey image
    defective: bool | None  # None when unknown (plain folder)
    defects: np.ndarray  # (N, 5) x1, y1, x2, y2, class id in image pixels; empty if none/unknown
    product: str | None = None  # recipe name of this board's product (DeepPCB: one product per board)

    @property
    def board_id(self) -> str:
        """The board's id: the file name without ``_test`` / ``_temp`` and extension."""
        stem = Path(self.name).stem
        for tail in ("_test", "_temp"):
            if stem.endswith(tail):
                return stem[: -len(tail)]
        return stem

    @property
    def image(self) -> np.ndarray:
        """HxW uint8 grey (as the line-scan camera sees it)."""
        return self.source if isinstance(self.source, np.ndarray) else _grey(self.source)


def _grey(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise DatasetError(f"{path}: not a readable image")
    return img


def deeppcb_product(board_id: str) -> str:
    """The recipe name of one DeepPCB board: each board is its own product, its template the golden."""
    return f"deeppcb-{board_id}"


def load_deeppcb_boards(pcb: Path, list_name: str = "trainval.txt") -> tuple[list[BoardSprite], list[BoardSprite]]:
    """Tested boards (defective, with their boxes) and templates (defect-free) of one list."""
    from inspection.datasets.deeppcb import find_pcbdata, parse_label_file, read_list

    pcb = find_pcbdata(pcb)
    tested, templates = [], []
    problems: list[str] = []
    for listed, label, _ in read_list(pcb, list_name):
        stem = listed.with_suffix("")
        test_path = stem.with_name(stem.name + "_test.jpg")
        temp_path = stem.with_name(stem.name + "_temp.jpg")
        img = _grey(test_path)  # decoded once to validate it and its labels, then let go
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


def load_folder_boards(folder: Path) -> list[BoardSprite]:
    """Every image in a folder, ground truth unknown."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{folder}: no images found")
    for p in files:
        _grey(p)  # fail now, naming the file, rather than mid-run
    return [BoardSprite(p.name, p, None, np.zeros((0, 5), np.float32)) for p in files]


def load_boards(source: Path) -> list[BoardSprite]:
    """DeepPCB layout (tested boards and templates) if it is one, else a plain image folder."""
    source = Path(source)
    if not source.exists():
        raise DatasetError(f"{source}: no such folder")
    if (source / "PCBData").is_dir() or (source / "trainval.txt").is_file() or (source / "test.txt").is_file():
        tested, templates = load_deeppcb_boards(source)
        return tested + templates
    return load_folder_boards(source)
