"""Board images for the simulated line, and the pool a line picks them from.

The camera package reads plain folders of images itself (truth unknown). A data set's
layout (DeepPCB's tested boards, templates and labels) is read by a ``BoardReader`` that
the caller hands over (``inspection.ml.datasets.boards.board_pool`` for DeepPCB): the
camera knows no data set format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from camera.decode import IMAGE_SUFFIXES
from camera.errors import CameraError


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
        return self.source if isinstance(self.source, np.ndarray) else read_grey(self.source)


def read_grey(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise CameraError(f"{path}: not a readable image")
    return img


def load_folder_boards(folder: Path) -> list[BoardSprite]:
    """Every image in a folder, ground truth unknown."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CameraError(f"{folder}: no images found")
    for p in files:
        read_grey(p)  # fail now, naming the file, rather than mid-run
    return [BoardSprite(p.name, p, None, np.zeros((0, 5), np.float32)) for p in files]


@dataclass(frozen=True, eq=False)
class BoardPool:
    """The boards a line can show: tested (defective), templates (good), or a plain folder (unknown)."""

    defective: tuple[BoardSprite, ...] = ()
    good: tuple[BoardSprite, ...] = ()
    unknown: tuple[BoardSprite, ...] = ()

    @staticmethod
    def from_folder(folder: Path) -> BoardPool:
        """Every image of a plain folder, truth unknown."""
        folder = Path(folder)
        if not folder.exists():
            raise CameraError(f"{folder}: no such board folder")
        return BoardPool(unknown=tuple(load_folder_boards(folder)))

    @property
    def size(self) -> int:
        return len(self.defective) + len(self.good) + len(self.unknown)

    def pick(self, rng: np.random.Generator, defect_rate: float) -> BoardSprite:
        """One board at random: defective with probability ``defect_rate`` when the truth is known."""
        if self.defective or self.good:
            bad = bool(self.defective) and (not self.good or rng.random() < defect_rate)
            group = self.defective if bad else self.good
        else:
            group = self.unknown
        if not group:
            raise CameraError("the board pool is empty")
        return group[int(rng.integers(len(group)))]


class BoardReader(Protocol):
    """Reads the boards of a folder for a simulated line: one list and one side of a split of a data set laid
    out as one (DeepPCB: tested boards with their labels, templates), else the folder's images."""

    def __call__(
        self, folder: Path, list_name: str | None = None, split: str = "all", val_percent: int = 20
    ) -> BoardPool: ...
