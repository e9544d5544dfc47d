"""Boards and their golden images for ``twinspect predict`` with a reference model.

Inputs are paired in one of two ways:
- ``--golden FILE``: every board is compared with that one golden image (a line of one product);
- the DeepPCB layout: each ``ID_test.jpg`` with the ``ID_temp.jpg`` beside it; templates
  are goldens, never predicted as boards.
A board without a golden is an error naming the file. Each pair is registered (the board
warped onto the golden, as the engine does), composed into the 3-plane reference input,
and the boxes found are mapped back into the board image's own pixels.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from camera.errors import ImageError
from inspection.core.detections import Detections
from inspection.inference.worker import InferenceWorker, in_order
from inspection.ml.images import read_image
from inspection.reference.align import align
from inspection.reference.planes import compose, gray
from inspection.reference.recipes import Golden, golden_from_image

TEST_SUFFIX = "_test.jpg"
TEMPLATE_SUFFIX = "_temp.jpg"
MAX_SIZE_RATIO = 1.25  # a golden more than this much larger or smaller than its board is another product


@dataclass(frozen=True)
class Pair:
    """One board image and the golden image it is compared with."""

    board: Path
    golden: Path


def pair_inputs(files: list[Path], golden: Path | None = None) -> list[Pair]:
    """Pair every input with its golden; see the module docstring. Raises ImageError naming a board without one."""
    if golden is not None:
        if not golden.is_file():
            raise ImageError(f"{golden}: no such golden image file")
        return [Pair(f, golden) for f in files if f.resolve() != golden.resolve()]
    pairs = []
    for f in files:
        if f.name.endswith(TEMPLATE_SUFFIX):
            continue
        partner = f.with_name(f.name[: -len(TEST_SUFFIX)] + TEMPLATE_SUFFIX) if f.name.endswith(TEST_SUFFIX) else None
        if partner is None or not partner.is_file():
            raise ImageError(
                f"{f}: no golden image for this board (a reference model needs one: --golden FILE, "
                f"or a DeepPCB pair ID{TEST_SUFFIX} + ID{TEMPLATE_SUFFIX})"
            )
        pairs.append(Pair(f, partner))
    return pairs


class GoldenCache:
    """Decoded golden images by path (a line of one product reads its golden once)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._goldens: dict[Path, Golden] = {}

    def get(self, path: Path) -> Golden:
        hit = self._goldens.get(path)
        if hit is None:
            data = path.read_bytes()
            image = read_image(path)
            hit = golden_from_image(path.stem, hashlib.sha256(data).hexdigest(), image)
            if len(self._goldens) >= self.size:
                self._goldens.pop(next(iter(self._goldens)))
            self._goldens[path] = hit
        return hit


@dataclass(frozen=True, eq=False)
class PreparedPair:
    """A pair ready for the reference model, or the reason it is not."""

    pair: Pair
    board_size: tuple[int, int]  # (width, height) of the board image
    image: np.ndarray | None  # reference input in golden pixels; None when alignment failed
    homography: np.ndarray  # board pixels -> golden pixels
    score: float  # alignment score (1.0 when not aligned: the pair is taken as registered)
    problem: str = ""
    unreadable: bool = False  # the board or golden file could not be read (problem says why); others go on


def prepare_pair(pair: Pair, goldens: GoldenCache, register: bool = True) -> PreparedPair:
    """Read, check, align and compose one pair."""
    board = gray(read_image(pair.board))
    golden = goldens.get(pair.golden)
    bh, bw = board.shape
    gw, gh = golden.size
    if max(bw / gw, gw / bw, bh / gh, gh / bh) > MAX_SIZE_RATIO:
        raise ImageError(
            f"{pair.golden}: golden image is {gw}x{gh} but board {pair.board} is {bw}x{bh}: another product?"
        )
    if not register:
        if (bw, bh) != (gw, gh):
            raise ImageError(
                f"{pair.golden}: golden {gw}x{gh} and board {pair.board} {bw}x{bh} differ in size; "
                f"they cannot be compared unregistered"
            )
        return PreparedPair(pair, (bw, bh), compose(board, golden.image), np.eye(3), 1.0)
    result = align(board, np.array([0, 0, bw, bh], np.float32), golden)
    if not result.ok or result.aligned is None:
        return PreparedPair(pair, (bw, bh), None, result.homography, result.score, result.failure())
    return PreparedPair(pair, (bw, bh), compose(result.aligned, golden.image), result.homography, result.score)


def prepare_or_report(pair: Pair, goldens: GoldenCache, register: bool = True) -> PreparedPair:
    """``prepare_pair``, but a file that cannot be read (truncated, corrupt, missing) is reported, not raised."""
    try:
        return prepare_pair(pair, goldens, register)
    except ImageError as error:
        return PreparedPair(pair, (0, 0), None, np.eye(3), 0.0, str(error), unreadable=True)


def to_board_pixels(det: Detections, homography: np.ndarray, size: tuple[int, int]) -> Detections:
    """Boxes found in golden pixels mapped back into the board image (the bounding box of each warped box)."""
    if len(det) == 0 or np.allclose(homography, np.eye(3)):
        return det
    inv = np.linalg.inv(homography)
    x1, y1, x2, y2 = (det.xyxy[:, i].astype(np.float64) for i in range(4))
    corners = np.stack(
        [np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x2, y2], 1), np.stack([x1, y2], 1)], 1
    )  # (N, 4, 2)
    back = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), inv).reshape(-1, 4, 2)
    w, h = size
    xyxy = np.concatenate([back.min(axis=1), back.max(axis=1)], axis=1)
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h)
    return Detections(xyxy.astype(np.float32), det.confidence, det.class_id, det.class_names)


def prepared_stream(
    pairs: list[Pair], register: bool = True, threads: int = 2, lookahead: int = 8
) -> Iterator[PreparedPair]:
    """Prepare pairs on ``threads`` threads, ``lookahead`` ahead, yielding them in input order."""
    goldens = GoldenCache()
    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="pair") as pool:
        pending: deque[Future[PreparedPair]] = deque()
        for pair in pairs:
            pending.append(pool.submit(prepare_or_report, pair, goldens, register))
            if len(pending) >= lookahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def detect_pairs(
    worker: InferenceWorker, stream: Iterable[PreparedPair], depth: int = 16
) -> Iterator[tuple[PreparedPair, Detections | None]]:
    """Detect on each prepared pair (None for a pair that could not be aligned), in input order,
    with boxes in the board image's pixels."""

    def start(prep: PreparedPair) -> Future[Detections] | None:
        return worker.submit(prep.image) if prep.image is not None else None

    for prep, det in in_order(stream, start, depth):
        yield prep, None if det is None else to_board_pixels(det, prep.homography, prep.board_size)
