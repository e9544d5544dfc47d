"""Request and response models of the recipe API (recipes, golden images, a line's recipe).

Kept apart from the storage value (``inspection.recipes.Recipe``): ``recipe_out`` turns it
into what the API (and ``twinspect recipes ... --json``) promises.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from inspection.reference.recipes import NAME_RE, AlignSettings, Recipe, RecipeError, RegionMask

MASKS = TypeAdapter(list[RegionMask])


class RecipeOut(BaseModel):
    name: str
    golden_sha256: str = Field(description="sha256 of the golden image file as uploaded.")
    width: int = Field(description="Golden image width, pixels.")
    height: int = Field(description="Golden image height, pixels.")
    masks: list[RegionMask] = Field(description="Regions of the golden image where differences are ignored.")
    align: AlignSettings = Field(description="How boards are aligned to the golden image.")
    description: str
    created_at: datetime | None
    created_by: str
    updated_at: datetime | None = Field(description="When the recipe was last added or replaced.")
    updated_by: str
    golden_url: str = Field(description="The golden image itself, by sha256 (kept after a replacement).")


class RecipesOut(BaseModel):
    items: list[RecipeOut]


class LineRecipeIn(BaseModel):
    """The recipe (product) a line inspects from now on."""

    model_config = ConfigDict(extra="forbid")

    recipe: str | None = Field(
        pattern=NAME_RE.pattern,
        description="Recipe name; null: none for the whole line (the camera names each "
        "part's product, or the defect model needs no golden).",
    )


class LineRecipeOut(BaseModel):
    line_id: str
    recipe: str | None
    previous: str | None = Field(description="The line's recipe before, as its twin knew it.")
    golden_sha256: str | None
    changed_by: str
    offset: int | None = Field(description="Offset of the line.recipe_changed event; null without an event log.")


def recipe_out(recipe: Recipe) -> RecipeOut:
    return RecipeOut(
        name=recipe.name,
        golden_sha256=recipe.golden_sha256,
        width=recipe.width,
        height=recipe.height,
        masks=list(recipe.masks),
        align=recipe.align,
        description=recipe.description,
        created_at=recipe.created_at,
        created_by=recipe.created_by,
        updated_at=recipe.updated_at,
        updated_by=recipe.updated_by,
        golden_url=f"/api/v1/goldens/{recipe.golden_sha256}",
    )


def _first_error(field: str, error: ValidationError) -> RecipeError:
    first = error.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    return RecipeError(f"{field}{where}: {first['msg']}")


def parse_masks(text: str) -> tuple[RegionMask, ...]:
    """Masks from JSON text (``[{"x1": 0, "y1": 0, "x2": 40, "y2": 20, "label": ".."}]``); RecipeError if bad."""
    try:
        return tuple(MASKS.validate_json(text or "[]"))
    except ValidationError as error:
        raise _first_error("masks", error) from None


def parse_align(text: str) -> AlignSettings:
    """Alignment settings from JSON text (``{"method": "ecc", "min_score": 0.8}``); RecipeError names the field."""
    try:
        return AlignSettings.model_validate_json(text or "{}")
    except ValidationError as error:
        raise _first_error("align", error) from None
