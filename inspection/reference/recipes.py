"""Recipe values: what a product's golden-reference inspection needs, and how the engine asks for it.

A *recipe* names a product. It holds the product's golden image (a defect-free board,
content-addressed by the sha256 of its file bytes), optional rectangular regions to
ignore (labels, serial-number stickers: places where good boards legitimately differ)
and the alignment settings. The engine asks a :class:`GoldenBook` for the decoded
:class:`Golden` of a recipe by name; the store-backed book lives in
:mod:`inspection.reference.recipe_store`, :class:`StaticGoldenBook` serves tests and tools.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from inspection.core.errors import InspectionError


class RecipeError(InspectionError):
    """A recipe or golden image is missing, malformed or does not fit."""


class RecipeNotFound(RecipeError):
    """No recipe of that name."""


class GoldenNotFound(RecipeError):
    """No golden image file with that sha256."""


class RecipeExists(RecipeError):
    """A recipe of that name exists already (replacing it must be asked for)."""


class GoldenSizeMismatch(RecipeError):
    """A replacement golden image has another size than the recipe's: most likely another product."""


class GoldenTooLarge(RecipeError):
    """A golden image file above the upload limit."""


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_DESCRIPTION = 2000


def check_name(name: str) -> str:
    """``name`` if it is a valid recipe name; RecipeError naming the field otherwise."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise RecipeError(f"name {name!r}: use 1-100 letters, digits, '.', '-' or '_', starting with a letter or digit")
    return name


class AlignSettings(BaseModel):
    """How a board crop is registered to its golden image (see inspection.reference.align)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["ecc", "features"] = Field(
        "ecc",
        description="ecc: coarse-to-fine ECC homography seeded by the board box (fast, needs the board "
        "roughly upright); features: ORB keypoints + RANSAC homography, then ECC (any pose, slower).",
    )
    min_score: float = Field(
        0.80,
        ge=-1.0,
        le=1.0,
        description="Alignment quality (normalised correlation of the "
        "aligned board and the golden, 1 = identical) below which a board is 'uncertain'.",
    )
    work_px: int = Field(
        160,
        ge=64,
        le=2048,
        description="Longer side, in pixels, at which ECC registers the "
        "board (the golden and the crop are resized to it).",
    )
    refine_px: int = Field(
        0,
        ge=0,
        le=4096,
        description="If larger than work_px: a second ECC pass at this size (finer, slower); 0 = none.",
    )
    iterations: int = Field(50, ge=1, le=1000, description="Most ECC iterations (it stops earlier once converged).")


class RegionMask(BaseModel):
    """A rectangle of the golden image, in golden pixels, where differences are ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x1: int = Field(ge=0, description="Left edge (golden pixels).")
    y1: int = Field(ge=0, description="Top edge (golden pixels).")
    x2: int = Field(gt=0, description="Right edge, exclusive.")
    y2: int = Field(gt=0, description="Bottom edge, exclusive.")
    label: str = Field("", max_length=200, description="Why this region is ignored.")


@dataclass(frozen=True)
class Recipe:
    """A product as stored: its golden image's sha256 and size, masks and alignment settings."""

    name: str
    golden_sha256: str
    width: int
    height: int
    masks: tuple[RegionMask, ...] = ()
    align: AlignSettings = field(default_factory=AlignSettings)
    description: str = ""
    created_at: datetime | None = None
    created_by: str = ""
    updated_at: datetime | None = None  # the last add/replace
    updated_by: str = ""


@dataclass(frozen=True, eq=False)
class Golden:
    """A recipe's golden image decoded for the engine: grey pixels plus the ignore mask."""

    recipe: str
    sha256: str
    image: np.ndarray  # HxW uint8 grey
    ignore: np.ndarray | None  # HxW uint8, 255 where differences are ignored; None without masks
    align: AlignSettings

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.image.shape[1]), int(self.image.shape[0])


def check_masks(masks: tuple[RegionMask, ...], width: int, height: int) -> None:
    """RecipeError naming the first mask (``masks[i]``) that is empty or not inside a width x height image."""
    for i, m in enumerate(masks):
        if m.x2 <= m.x1 or m.y2 <= m.y1 or m.x2 > width or m.y2 > height:
            raise RecipeError(
                f"masks[{i}]: ({m.x1},{m.y1})-({m.x2},{m.y2}) is empty or outside the {width}x{height} golden image"
            )


def ignore_mask(masks: tuple[RegionMask, ...], width: int, height: int) -> np.ndarray | None:
    """HxW uint8 mask, 255 inside any of the rectangles; None without rectangles."""
    if not masks:
        return None
    out = np.zeros((height, width), np.uint8)
    for m in masks:
        if m.x2 <= m.x1 or m.y2 <= m.y1 or m.x2 > width or m.y2 > height:
            raise RecipeError(
                f"mask ({m.x1},{m.y1})-({m.x2},{m.y2}) is empty or outside the {width}x{height} golden image"
            )
        cv2.rectangle(out, (m.x1, m.y1), (m.x2 - 1, m.y2 - 1), 255, thickness=-1)
    return out


def golden_from_image(
    recipe: str, sha256: str, image: np.ndarray, masks: tuple[RegionMask, ...] = (), align: AlignSettings | None = None
) -> Golden:
    """A Golden from decoded pixels (grey or BGR)."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape[:2]
    return Golden(recipe, sha256, np.ascontiguousarray(grey), ignore_mask(masks, w, h), align or AlignSettings())


class GoldenBook(Protocol):
    """Where the engine gets a recipe's golden image; implementations cache decoded images."""

    def golden(self, recipe: str) -> Golden:
        """The golden of ``recipe``; raises RecipeNotFound / RecipeError."""
        ...


class StaticGoldenBook:
    """A fixed set of goldens by recipe name (tests, predict with --golden)."""

    def __init__(self, goldens: Mapping[str, Golden]) -> None:
        self._goldens = dict(goldens)

    def golden(self, recipe: str) -> Golden:
        try:
            return self._goldens[recipe]
        except KeyError:
            raise RecipeNotFound(f"recipe {recipe!r}: no such recipe") from None
