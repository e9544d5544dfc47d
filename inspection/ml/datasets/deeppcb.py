"""Importer for the upstream DeepPCB layout.

Reads ``PCBData/trainval.txt`` (and ``PCBData/test.txt`` when present): one line per
board, ``groupG/G/ID.jpg groupG/G_not/ID.txt``. The tested board is ``ID_test.jpg``,
its aligned defect-free template ``ID_temp.jpg``; each label line is
``x1,y1,x2,y2,type`` (commas or spaces) with type 1..6.

Validation runs over everything first and reports every offending file; nothing is
written unless all of it is good.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camera.decode import decode as decode_image
from camera.errors import ImageError
from inspection.core.classes import DEEPPCB_CLASSES
from inspection.core.errors import DatasetError
from inspection.ml.datasets.yolo import Box, YoloDatasetWriter, png_bytes
from inspection.ml.hashing import tree_sha256
from inspection.reference.planes import INPUT_KINDS, compose, jitter_pair

_SEP = re.compile(r"[,\s]+")


@dataclass(frozen=True)
class Board:
    """One DeepPCB board: its tested image, its template and its defects."""

    board_id: str
    test_image: Path
    template_image: Path
    label_file: Path
    boxes: tuple[Box, ...]
    size: tuple[int, int]


def find_pcbdata(src: Path) -> Path:
    """Accept either the folder holding ``PCBData`` or ``PCBData`` itself."""
    src = Path(src)
    if not src.exists():
        raise DatasetError(f"{src}: no such folder")
    for cand in (src / "PCBData", src):
        if (cand / "trainval.txt").is_file() or (cand / "test.txt").is_file():
            return cand
    raise DatasetError(f"{src}: not a DeepPCB folder (no PCBData/trainval.txt or test.txt)")


def read_list(pcb: Path, list_name: str) -> list[tuple[Path, Path, int]]:
    """Lines of one list file as (image path as listed, label path, line number)."""
    path = pcb / list_name
    entries = []
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DatasetError(f"{path}:{lineno}: expected 'image label', got {raw!r}")
        entries.append((pcb / parts[0], pcb / parts[1], lineno))
    return entries


def parse_label_file(path: Path, size: tuple[int, int], problems: list[str]) -> list[Box]:
    """Boxes of one label file; each problem is appended as 'file:line: reason'."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: unreadable label file ({exc.__class__.__name__})")
        return []
    lines = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if not lines:
        problems.append(f"{path}: empty label file")
        return []
    w, h = size
    boxes = []
    for n, line in lines:
        fields = _SEP.split(line)
        if len(fields) != 5:
            problems.append(f"{path}:{n}: expected 5 fields x1,y1,x2,y2,type, got {line!r}")
            continue
        try:
            x1, y1, x2, y2 = (float(v) for v in fields[:4])
            kind = int(fields[4])
        except ValueError:
            problems.append(f"{path}:{n}: not numbers: {line!r}")
            continue
        if not 1 <= kind <= len(DEEPPCB_CLASSES):
            problems.append(f"{path}:{n}: unknown defect type {kind} (expected 1-6)")
            continue
        if x1 < 0 or y1 < 0 or x2 > w or y2 > h or x2 <= x1 or y2 <= y1:
            problems.append(f"{path}:{n}: box {x1:g},{y1:g},{x2:g},{y2:g} outside the {w}x{h} image or empty")
            continue
        boxes.append(Box(x1, y1, x2, y2, kind - 1))
    return boxes


def image_size(path: Path, problems: list[str]) -> tuple[int, int] | None:
    """(width, height) of an image after a full decode (its header size checked first), or None with a problem
    noted."""
    if not path.is_file():
        problems.append(f"{path}: missing image")
        return None
    try:
        img = decode_image(path.read_bytes(), flags=cv2.IMREAD_UNCHANGED)
    except (OSError, ImageError) as exc:
        problems.append(f"{path}: unreadable or corrupt image ({exc})")
        return None
    return int(img.shape[1]), int(img.shape[0])


def load_boards(
    pcb: Path, list_name: str, progress: Callable[[Iterable[Any]], Iterable[Any]], problems: list[str]
) -> list[Board]:
    """Read and validate every board of one list; problems are collected, not raised."""
    boards = []
    for listed, label, _ in progress(read_list(pcb, list_name)):
        stem = listed.with_suffix("")
        test_img = stem.with_name(stem.name + "_test.jpg")
        temp_img = stem.with_name(stem.name + "_temp.jpg")
        size = image_size(test_img, problems)
        tsize = image_size(temp_img, problems)
        if not label.is_file():
            problems.append(f"{label}: missing label file")
            continue
        if size is None or tsize is None:
            continue
        boxes = parse_label_file(label, size, problems)
        boards.append(Board(stem.name, test_img, temp_img, label, tuple(boxes), size))
    return boards


def is_validation(board_id: str, val_percent: int) -> bool:
    """Deterministic split by image id: the same id always lands in the same split."""
    bucket = int(hashlib.sha256(board_id.encode()).hexdigest()[:8], 16) % 100
    return bucket < val_percent


def _add_board(
    writer: YoloDatasetWriter,
    list_name: str,
    b: Board,
    input_kind: str,
    val_percent: int,
    background_percent: int,
    seed: int,
) -> list[Path]:
    """Write one board of ``list_name`` into its split; returns the source files it used."""
    split = "test" if list_name == "test.txt" else "val" if is_validation(b.board_id, val_percent) else "train"
    if input_kind == "reference":
        _add_reference(writer, split, b, seed)
        return [b.test_image, b.template_image, b.label_file]
    writer.add(split, b.test_image.name, None, b.size, list(b.boxes), source=b.test_image)
    used = [b.test_image, b.label_file]
    if split == "train" and is_validation(b.board_id + "/template", background_percent):
        writer.add(split, b.template_image.name, None, b.size, [], source=b.template_image)
        used.append(b.template_image)
    return used


def import_deeppcb(
    src: Path,
    out: Path,
    val_percent: int = 20,
    background_percent: int = 10,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it,
    input_kind: str = "image",
    seed: int = 0,
) -> dict[str, Any]:
    """Import DeepPCB into a YOLO dataset at ``out`` and return its card.

    ``input_kind="image"``: the tested boards as they are; ``background_percent`` of the
    training boards also contribute their defect-free template as a background image (no
    boxes), which teaches the model that clean copper is not a defect.

    ``input_kind="reference"``: every image is the 3-plane reference input of
    :mod:`inspection.reference.planes` (board, golden, difference) written as PNG. Training
    pairs get a random residual misregistration and re-lighting (seeded per board, so
    an import is reproducible), and every training template is also a good example
    (the golden against a shifted, re-lit copy of itself, or against itself exactly).
    Validation and test pairs are composed as shipped (DeepPCB's aligned templates).

    Validation and test splits hold tested boards only, as the DeepPCB protocol scores them.
    """
    if not 0 < val_percent < 100:
        raise DatasetError(f"val_percent: must be between 1 and 99, got {val_percent}")
    if not 0 <= background_percent <= 100:
        raise DatasetError(f"background_percent: must be between 0 and 100, got {background_percent}")
    if input_kind not in INPUT_KINDS:
        raise DatasetError(f"input: must be one of {', '.join(INPUT_KINDS)}, got {input_kind!r}")
    pcb = find_pcbdata(src)
    lists = [n for n in ("trainval.txt", "test.txt") if (pcb / n).is_file()]
    problems: list[str] = []
    per_list = {name: load_boards(pcb, name, progress, problems) for name in lists}
    if input_kind == "reference":
        check_template_sizes([b for boards in per_list.values() for b in boards], problems)
    if problems:
        raise DatasetError(f"{src}: {len(problems)} problem(s), nothing imported", problems)
    writer = YoloDatasetWriter(out, DEEPPCB_CLASSES, extra_yaml={"input": input_kind})
    try:
        used: list[Path] = [pcb / n for n in lists]
        for list_name, boards in per_list.items():
            for b in boards:
                used += _add_board(writer, list_name, b, input_kind, val_percent, background_percent, seed)
        source_hash = tree_sha256(used, pcb)
        rule = f"val = sha256(board id) % 100 < {val_percent}; " + (
            f"train templates as background: {background_percent}%"
            if input_kind == "image"
            else f"reference input; every train template also a good example; jitter seed {seed}"
        )
        return writer.commit(
            source_hash,
            {
                "name": out.name,
                "source": "DeepPCB (Tang et al. 2019), upstream PCBData layout",
                "input": input_kind,
                "split_rule": rule,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
    except BaseException:
        writer.abort()
        raise


def check_template_sizes(boards: list[Board], problems: list[str]) -> None:
    """A reference pair needs a template of the tested board's size."""
    for b in boards:
        tmpl = cv2.imread(str(b.template_image), cv2.IMREAD_GRAYSCALE)
        if tmpl is not None and (tmpl.shape[1], tmpl.shape[0]) != b.size:
            problems.append(
                f"{b.template_image}: template is {tmpl.shape[1]}x{tmpl.shape[0]}, its board {b.size[0]}x{b.size[1]}"
            )


def board_rng(board_id: str, seed: int) -> np.random.Generator:
    """A random generator fixed by the board id and the import seed."""
    digest = hashlib.sha256(f"{seed}/{board_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _add_reference(writer: YoloDatasetWriter, split: str, b: Board, seed: int) -> None:
    """One board's reference images: the tested pair, and in training a good pair too."""
    test = cv2.imread(str(b.test_image), cv2.IMREAD_GRAYSCALE)
    temp = cv2.imread(str(b.template_image), cv2.IMREAD_GRAYSCALE)
    if test is None or temp is None:  # validated before; a file changed under us
        raise DatasetError(f"{b.test_image}: became unreadable during the import")
    if split != "train":
        writer.add(split, f"{b.board_id}_test.png", png_bytes(compose(test, temp)), b.size, list(b.boxes))
        return
    rng = board_rng(b.board_id, seed)
    writer.add(split, f"{b.board_id}_test.png", png_bytes(jitter_pair(test, temp, rng)), b.size, list(b.boxes))
    writer.add(split, f"{b.board_id}_temp.png", png_bytes(jitter_pair(temp, temp, rng)), b.size, [])
