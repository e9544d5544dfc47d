"""Golden-reference inspection, before the defect model: recipe -> golden -> alignment -> model input.

For each board crop the stage finds the recipe (the product the camera names for this
part, else the line's recipe), takes its golden from the :class:`GoldenBook`, registers
the crop to it (:mod:`inspection.reference.align`), composes the 3-plane reference input
(:mod:`inspection.reference.planes`) and finds the differences the model will have to explain
(:mod:`inspection.reference.differences`). A board that cannot be prepared (no recipe, a missing or
unreadable golden, failed alignment) comes back with ``problem`` set and no model input:
the rules make it ``uncertain`` with that reason, never ``pass``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from inspection.pipeline.verdict import ReferenceInfo
from inspection.reference.align import align
from inspection.reference.differences import DifferenceConfig, Differences, find_differences
from inspection.reference.planes import compose
from inspection.reference.recipes import Golden, GoldenBook, RecipeError


@dataclass(frozen=True, eq=False)
class Prepared:
    """One board ready for a reference model, or the reason it is not."""

    image: np.ndarray | None  # HxWx3 reference input (board, golden, difference); None when not inspectable
    aligned: np.ndarray | None  # HxW board in golden pixels
    info: ReferenceInfo | None  # recipe, golden sha, alignment score (None when no golden was found)
    differences: Differences | None
    problem: str = ""  # why the board cannot be inspected (the verdict's reason)

    @property
    def ok(self) -> bool:
        return self.image is not None


class ReferenceStage:
    """Prepares board crops for a reference-input defect model; thread-safe."""

    def __init__(
        self, book: GoldenBook, recipe: str | None = None, differences: DifferenceConfig | None = None
    ) -> None:
        self.book = book
        self.differences = differences or DifferenceConfig()
        self._recipe = recipe
        self._lock = threading.Lock()

    @property
    def recipe(self) -> str | None:
        """The line's recipe: used for every part whose camera names no product."""
        with self._lock:
            return self._recipe

    def set_recipe(self, recipe: str | None) -> Golden | None:
        """Switch the line's recipe (checked first: an unknown recipe raises and changes nothing)."""
        golden = self.book.golden(recipe) if recipe is not None else None
        with self._lock:
            self._recipe = recipe
        return golden

    def prepare(self, crop: np.ndarray, board_xyxy: np.ndarray, product: str | None = None) -> Prepared:
        """Align ``crop`` (board box ``board_xyxy`` in crop pixels) to its golden and compose the model input."""
        recipe = product or self.recipe
        if recipe is None:
            return Prepared(
                None,
                None,
                None,
                None,
                "no golden: line.recipe is not set and the camera names no product for this part",
            )
        try:
            golden = self.book.golden(recipe)
        except RecipeError as exc:
            return Prepared(None, None, None, None, f"no golden: {exc}")
        result = align(crop, board_xyxy, golden)
        info = ReferenceInfo(
            recipe,
            golden.sha256,
            round(float(result.score), 4),
            result.ok,
            tuple(float(v) for v in result.homography.ravel()),
        )
        if not result.ok or result.aligned is None:
            return Prepared(None, None, info, None, result.failure())
        image = compose(result.aligned, golden.image)
        diffs = (
            find_differences(result.aligned, golden.image, self.differences, golden.ignore)
            if self.differences.enabled
            else None
        )
        return Prepared(image, result.aligned, info, diffs)
